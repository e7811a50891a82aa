//go:build !unix

package main

// raiseFileLimit has no descriptor limit to raise here: it reports none.
func raiseFileLimit() (uint64, error) { return 0, nil }
