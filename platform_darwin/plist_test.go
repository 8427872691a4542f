package platform_darwin

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The launchd plist is checked here with a small XML property-list
// reader (what plutil -lint checks on a Mac: well-formed, every value a
// plist type, keys paired with values), then for the keys launchd needs.

const plistPath = "../installer/darwin/dev.tcpinc.tcpincd.plist"

// parsePlist reads an XML property list into Go values: map[string]any,
// []any, string, int64, bool.
func parsePlist(b []byte) (any, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, fmt.Errorf("plist: no <plist> element: %w", err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Local != "plist" {
				return nil, fmt.Errorf("plist: root element <%s>", se.Name.Local)
			}
			v, err := plistValue(d, nil)
			if err != nil {
				return nil, err
			}
			if err := plistEnd(d, "plist"); err != nil {
				return nil, err
			}
			return v, nil
		}
	}
}

var errPlistEnd = errors.New("end of container")

// plistValue reads the next value; start is its start element if the
// caller already consumed it.
func plistValue(d *xml.Decoder, start *xml.StartElement) (any, error) {
	if start == nil {
		for {
			tok, err := d.Token()
			if err != nil {
				return nil, err
			}
			switch t := tok.(type) {
			case xml.StartElement:
				start = &t
			case xml.EndElement:
				return nil, errPlistEnd
			case xml.CharData:
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, fmt.Errorf("plist: stray text %q", t)
				}
				continue
			default:
				continue
			}
			break
		}
	}
	switch start.Name.Local {
	case "dict":
		m := map[string]any{}
		for {
			k, err := plistValue(d, nil)
			if errors.Is(err, errPlistEnd) {
				return m, nil
			}
			if err != nil {
				return nil, err
			}
			ks, ok := k.(plistKey)
			if !ok {
				return nil, fmt.Errorf("plist: dict entry without <key>")
			}
			v, err := plistValue(d, nil)
			if err != nil {
				return nil, fmt.Errorf("plist: key %q: %w", ks, err)
			}
			if _, isKey := v.(plistKey); isKey {
				return nil, fmt.Errorf("plist: key %q has no value", ks)
			}
			if _, dup := m[string(ks)]; dup {
				return nil, fmt.Errorf("plist: duplicate key %q", ks)
			}
			m[string(ks)] = v
		}
	case "array":
		var a []any
		for {
			v, err := plistValue(d, nil)
			if errors.Is(err, errPlistEnd) {
				return a, nil
			}
			if err != nil {
				return nil, err
			}
			if _, isKey := v.(plistKey); isKey {
				return nil, errors.New("plist: <key> in an array")
			}
			a = append(a, v)
		}
	case "key", "string", "integer":
		var s string
		if err := d.DecodeElement(&s, start); err != nil {
			return nil, err
		}
		switch start.Name.Local {
		case "key":
			return plistKey(s), nil
		case "integer":
			n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("plist: bad integer %q", s)
			}
			return n, nil
		}
		return s, nil
	case "true", "false":
		if err := plistEnd(d, start.Name.Local); err != nil {
			return nil, err
		}
		return start.Name.Local == "true", nil
	}
	return nil, fmt.Errorf("plist: unsupported element <%s>", start.Name.Local)
}

type plistKey string

func plistEnd(d *xml.Decoder, name string) error {
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if t.Name.Local != name {
				return fmt.Errorf("plist: </%s> where </%s> was expected", t.Name.Local, name)
			}
			return nil
		case xml.StartElement:
			return fmt.Errorf("plist: <%s> inside <%s>", t.Name.Local, name)
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return fmt.Errorf("plist: text inside <%s>", name)
			}
		}
	}
}

func TestLaunchdPlist(t *testing.T) {
	b, err := os.ReadFile(plistPath)
	if err != nil {
		t.Fatal(err)
	}
	v, err := parsePlist(b)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("top level is %T, want a dict", v)
	}
	label := strings.TrimSuffix(filepath.Base(plistPath), ".plist")
	if m["Label"] != label {
		t.Errorf("Label %v, want %q (launchd requires the file name to match)", m["Label"], label)
	}
	args, _ := m["ProgramArguments"].([]any)
	if len(args) < 2 || !strings.HasPrefix(fmt.Sprint(args[0]), "/") || args[1] != "run" {
		t.Errorf("ProgramArguments %v: want an absolute tcpincd path, then run", args)
	}
	if m["RunAtLoad"] != true {
		t.Error("RunAtLoad is not true")
	}
	switch ka := m["KeepAlive"].(type) {
	case bool:
		if !ka {
			t.Error("KeepAlive false")
		}
	case map[string]any:
		if ka["SuccessfulExit"] != false {
			t.Error("KeepAlive dict does not restart after failures")
		}
	default:
		t.Errorf("KeepAlive missing or %T", ka)
	}
	for _, k := range []string{"StandardOutPath", "StandardErrorPath"} {
		if s, _ := m[k].(string); !strings.HasPrefix(s, "/var/log/") {
			t.Errorf("%s %v: want a file under /var/log", k, m[k])
		}
	}
	if u, ok := m["UserName"]; ok && u != "root" {
		t.Errorf("UserName %v: tcpincd must run as root", u)
	}
	if n, _ := m["ExitTimeOut"].(int64); n < 20 {
		t.Errorf("ExitTimeOut %v: tcpincd needs time to remove its pf rules", m["ExitTimeOut"])
	}
	// The control socket the plist names is the one the docs tell users.
	if !bytes.Contains(b, []byte("/var/run/tcpinc/tcpincd.sock")) {
		t.Error("plist does not set the control socket under /var/run")
	}
}

func TestParsePlistRejects(t *testing.T) {
	for name, s := range map[string]string{
		"not xml":        "{",
		"no plist":       "<dict/>",
		"key no value":   "<plist><dict><key>A</key></dict></plist>",
		"value no key":   "<plist><dict><string>x</string></dict></plist>",
		"bad integer":    "<plist><integer>x</integer></plist>",
		"unknown type":   "<plist><date>2020</date></plist>",
		"unclosed":       "<plist><dict><key>A</key><true/>",
		"duplicate key":  "<plist><dict><key>A</key><true/><key>A</key><false/></dict></plist>",
		"text in bool":   "<plist><true>x</true></plist>",
		"key in array":   "<plist><array><key>A</key></array></plist>",
		"two top values": "<plist><true/><false/></plist>",
	} {
		if _, err := parsePlist([]byte(s)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParsePlist: the test's plist reader never panics or loops.
func FuzzParsePlist(f *testing.F) {
	if b, err := os.ReadFile(plistPath); err == nil {
		f.Add(b)
	}
	f.Add([]byte("<plist><array><integer>1</integer><true/></array></plist>"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parsePlist(b)
	})
}
