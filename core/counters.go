package core

import (
	"reflect"
	"strconv"
	"strings"
	"unicode"
)

// IndexNamer names element i of the array counter at path (the array's
// flattened name, e.g. "engine_packets"). It returns "" to use the index.
type IndexNamer func(path string, i int) string

// Flatten turns a counters struct (or pointer to one) into a map from
// snake_case names to values. Nested structs add their field name as a
// prefix ("Engine.ConnsEncrypted" becomes "engine_conns_encrypted");
// arrays add the element's name from names, or its index
// ("engine_packets_inbound", "injected_0"). Unsigned and non-negative
// signed integer fields are kept; other kinds are skipped. names may be nil.
func Flatten(v any, names IndexNamer) map[string]uint64 {
	out := make(map[string]uint64)
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return out
		}
		rv = rv.Elem()
	}
	flatten(out, "", rv, names)
	return out
}

func flatten(out map[string]uint64, path string, v reflect.Value, names IndexNamer) {
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := SnakeCase(f.Name)
			if f.Anonymous {
				name = ""
			}
			flatten(out, join(path, name), v.Field(i), names)
		}
	case reflect.Array, reflect.Slice:
		for i := range v.Len() {
			el := ""
			if names != nil {
				el = names(path, i)
			}
			if el == "" {
				el = strconv.Itoa(i)
			}
			flatten(out, join(path, SnakeCase(el)), v.Index(i), names)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		out[path] = v.Uint()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n := v.Int(); n >= 0 {
			out[path] = uint64(n)
		}
	}
}

func join(prefix, name string) string {
	switch {
	case prefix == "":
		return name
	case name == "":
		return prefix
	}
	return prefix + "_" + name
}

// SnakeCase converts a Go identifier to snake_case, keeping initialisms
// together: "ConnsTableFull" → "conns_table_full", "RecvENOBUFS" →
// "recv_enobufs", "AbortFINWithoutFINp" → "abort_fin_without_finp".
// A single lowercase letter ending a word after an initialism stays with
// it (plural or suffix: "IDs" → "ids"). Dashes and spaces become
// underscores.
func SnakeCase(s string) string {
	r := []rune(s)
	var b strings.Builder
	for i, c := range r {
		if c == '-' || c == ' ' {
			c = '_'
		}
		if unicode.IsUpper(c) && i > 0 {
			prev := r[i-1]
			switch {
			case unicode.IsLower(prev) || unicode.IsDigit(prev):
				b.WriteByte('_')
			case unicode.IsUpper(prev) && i+2 < len(r) && unicode.IsLower(r[i+1]) && unicode.IsLower(r[i+2]):
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}
