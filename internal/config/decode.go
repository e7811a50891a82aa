package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
)

// ByteSize is a number of bytes. In a file or variable it is a plain
// integer or a string with a unit: B, KB (1000), MB, GB, KiB (1024), MiB,
// GiB, e.g. 1048576, "512KiB", "1MiB", "1MB".
type ByteSize int64

// Byte size units, the multipliers behind the suffixes ParseByteSize
// accepts: KB, MB and GB are decimal (powers of 1000), KiB, MiB and GiB
// binary (powers of 1024), because operators write both and mean different
// numbers by them.
const (
	KB  ByteSize = 1000
	MB           = 1000 * KB
	GB           = 1000 * MB
	KiB ByteSize = 1024
	MiB          = 1024 * KiB
	GiB          = 1024 * MiB
)

var sizeUnits = []struct {
	suffix string
	mult   ByteSize
}{ // longest suffixes first so "KiB" is not read as "B"
	{"kib", KiB}, {"mib", MiB}, {"gib", GiB},
	{"kb", KB}, {"mb", MB}, {"gb", GB},
	{"b", 1},
}

// ParseByteSize reads "1048576", "512KiB", "1MiB", "1 MB" and the like.
// Units are case-insensitive.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := ByteSize(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/int64(mult) {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return ByteSize(n) * mult, nil
}

// String prints the size with the largest binary unit that divides it
// exactly: 1MiB, 512KiB, 1000.
func (b ByteSize) String() string {
	for _, u := range []struct {
		suffix string
		mult   ByteSize
	}{{"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}} {
		if b != 0 && b%u.mult == 0 {
			return strconv.FormatInt(int64(b/u.mult), 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// valueError is a value that cannot become its key's type. It is turned into
// an *Error naming the key and the source by decodeErrors.
type valueError struct {
	val  any
	want string // "a duration (e.g. 500ms, 2s)"
}

func (e *valueError) Error() string { return fmt.Sprintf("%s is not %s", show(e.val), e.want) }

// show prints a value the way the operator wrote it: strings quoted.
func show(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

const (
	wantDuration = "a duration (e.g. 500ms, 2s, 1m30s; 0 for none)"
	wantSize     = "a size (e.g. 1048576, 512KiB, 1MiB, 1MB)"
	wantInt      = "an integer (e.g. 64)"
	wantBool     = "a boolean (true or false)"
	wantString   = "a string"
)

var (
	durationType = reflect.TypeFor[time.Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
)

// decodeHook converts every scalar itself, so each conversion failure
// becomes a valueError with an example of what is accepted, instead of a
// reflection message.
func decodeHook(_ reflect.Type, to reflect.Type, data any) (any, error) {
	if data == nil {
		return nil, nil
	}
	switch to {
	case durationType:
		return toDuration(data)
	case byteSizeType:
		n, err := toInt(data)
		if err == nil {
			if n < 0 {
				return nil, &valueError{data, wantSize}
			}
			return ByteSize(n), nil
		}
		if s, ok := data.(string); ok {
			if b, err := ParseByteSize(s); err == nil {
				return b, nil
			}
		}
		return nil, &valueError{data, wantSize}
	}
	switch to.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := toInt(data)
		if err != nil {
			return nil, &valueError{data, wantInt}
		}
		return n, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := toInt(data)
		if err != nil || n < 0 {
			return nil, &valueError{data, "a non-negative integer (e.g. 64)"}
		}
		return n, nil
	case reflect.Bool:
		switch v := data.(type) {
		case bool:
			return v, nil
		case string:
			if b, err := strconv.ParseBool(strings.TrimSpace(v)); err == nil {
				return b, nil
			}
		}
		return nil, &valueError{data, wantBool}
	case reflect.String:
		switch data.(type) {
		case string:
			return data, nil
		case bool, int, int64, uint64, float64:
			return fmt.Sprint(data), nil
		}
		return nil, &valueError{data, wantString}
	case reflect.Slice:
		if s, ok := data.(string); ok && to.Elem().Kind() == reflect.String {
			// An environment variable sets a list as "a,b,c".
			var out []string
			for _, p := range strings.Split(s, ",") {
				if p = strings.TrimSpace(p); p != "" {
					out = append(out, p)
				}
			}
			return out, nil
		}
	case reflect.Struct, reflect.Map:
		if reflect.TypeOf(data).Kind() != reflect.Map {
			return nil, &valueError{data, "a section (a map of keys)"}
		}
	}
	return data, nil
}

func toInt(data any) (int64, error) {
	switch v := data.(type) {
	case int:
		return int64(v), nil
	case int64:
		return v, nil
	case int32:
		return int64(v), nil
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v), nil
		}
	case float64: // JSON numbers
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return int64(v), nil
		}
	case string:
		return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	}
	return 0, errors.New("not an integer")
}

func toDuration(data any) (time.Duration, error) {
	switch v := data.(type) {
	case time.Duration:
		return v, nil
	case string:
		if d, err := time.ParseDuration(strings.TrimSpace(v)); err == nil {
			return d, nil
		}
	default:
		// A bare number has no unit; only 0 is unambiguous.
		if n, err := toInt(data); err == nil && n == 0 {
			return 0, nil
		}
	}
	return 0, &valueError{data, wantDuration}
}

// decodeErrors turns what mapstructure returned (a tree of joined
// DecodeErrors) into one *Error per failing key.
func (l *loader) decodeErrors(err error) []error {
	var out []error
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case *mapstructure.DecodeError:
			msg := e.Unwrap().Error()
			var ve *valueError
			if errors.As(e, &ve) {
				msg = ve.Error()
			}
			out = append(out, l.errorf(mapKeyPath(e.Name()), "%s", msg))
		case interface{ Unwrap() []error }:
			for _, c := range e.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		default:
			out = append(out, l.errorf("", "%v", err))
		}
	}
	walk(err)
	return out
}

// mapKeyPath rewrites mapstructure's "listeners[ws].type" as "listeners.ws.type".
func mapKeyPath(name string) string {
	r := strings.NewReplacer("[", ".", "]", "")
	return r.Replace(name)
}
