// Package config loads the mqttd configuration.
//
// A configuration is assembled from three layers, highest priority first:
//
//  1. environment variables: MQTTD_ followed by the key path upper-cased,
//     with "." and "-" turned into "_" (limits.max-inflight is
//     MQTTD_LIMITS_MAX_INFLIGHT). Every key of the schema can be set this way,
//     whether or not the file mentions it; an empty variable sets an empty
//     value (MQTTD_ADMIN_BIND= disables the admin listener).
//  2. one file, YAML, TOML or JSON by its extension, given to Load or found
//     in the search path (see SearchPath);
//  3. the built-in defaults (see Default), so that no file at all is a
//     working broker on :1883.
//
// String values in the file may reference the environment as ${VAR} or
// ${VAR:-default} (the default applies when VAR is unset or empty); $${ is a
// literal "${". Expansion runs on the parsed values, not on the raw text, so
// comments are never expanded and an expanded value can hold any character
// without breaking the file's syntax. A ${VAR} whose variable is unset and
// has no default is an error naming it. Values coming from MQTTD_ variables
// are taken literally.
//
// Keys are case-insensitive (viper's rule), so listener names are read
// lower-cased. Relative certificate paths resolve against the directory of
// the config file.
//
// Every error names the file, the key, the offending value and what would be
// accepted, e.g.
//
//	config: mqttd.yaml: limits.connect-timeout: "5" is not a duration (e.g. 500ms, 2s)
//
// The schema is the Config struct: one struct per section, keys in the
// mapstructure tags (kebab-case), a one-line description in the doc tags.
// Adding a section is adding a field: defaults, environment variables,
// unknown-key detection, printing and the reference table all walk the
// struct.
package config
