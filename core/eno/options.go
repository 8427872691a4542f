package eno

// TCP option kinds the scan looks at besides ENO.
const (
	kindEOL    = 0
	kindNOP    = 1
	kindTFO    = 34  // TCP Fast Open (RFC 7413)
	kindExp1   = 253 // RFC 6994 experiments: legacy ENO uses ExID 0x454E,
	kindExp2   = 254 // experimental TFO uses ExID 0xF989 (RFC 7413 §4.1.1)
	tfoExpExID = 0xf989
)

// Options is what ScanOptions found in a TCP options area.
type Options struct {
	// ENO is the first ENO option (kind 69), kind and length bytes
	// included, or nil. It aliases the options area.
	ENO []byte
	// NumENO counts ENO options: kind 69 and the legacy RFC 6994 form with
	// ExID 0x454E, which §11 says counts as one too. A SYN with more than
	// one is treated as if it had none (§4.1); in a non-SYN segment several
	// count as one.
	NumENO int
	// TFO reports a non-empty TCP Fast Open option (RFC 7413), whose SYN
	// data would conflict with ENO's (§4.7).
	TFO bool
}

// ScanOptions walks a TCP options area (the header bytes after the fixed
// 20) for ENO and TFO options. It stops at End of Option List. A malformed
// area yields ErrBadOptions together with what was found before the fault.
func ScanOptions(area []byte) (Options, error) {
	var o Options
	for i := 0; i < len(area); {
		kind := area[i]
		switch kind {
		case kindEOL:
			return o, nil
		case kindNOP:
			i++
			continue
		}
		if i+1 >= len(area) {
			return o, ErrBadOptions
		}
		n := int(area[i+1])
		if n < 2 || i+n > len(area) {
			return o, ErrBadOptions
		}
		opt := area[i : i+n : i+n]
		switch kind {
		case OptionKind:
			if o.ENO == nil {
				o.ENO = opt
			}
			o.NumENO++
		case kindTFO:
			o.TFO = o.TFO || n > 2 // an empty one is only a cookie request
		case kindExp1, kindExp2:
			if n >= 4 {
				switch uint16(opt[2])<<8 | uint16(opt[3]) {
				case legacyExID:
					o.NumENO++
				case tfoExpExID:
					o.TFO = o.TFO || n > 4
				}
			}
		}
		i += n
	}
	return o, nil
}
