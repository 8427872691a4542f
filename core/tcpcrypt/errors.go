package tcpcrypt

import "errors"

// Errors returned by this package. They never carry key material. Each
// "abort" error is distinct from io.EOF, as RFC 8548 requires for every
// condition that must not look like a clean end of stream.
var (
	// ErrNeedMore means the buffer ends inside a message or frame; it is
	// not a failure, the caller should read more bytes.
	ErrNeedMore = errors.New("tcpcrypt: need more data")

	ErrUnsupportedAEAD = errors.New("tcpcrypt: unsupported AEAD")
	ErrNoCommonAEAD    = errors.New("tcpcrypt: no acceptable AEAD offered")
	ErrAEADNotOffered  = errors.New("tcpcrypt: Init2 chose an AEAD that Init1 did not offer")

	ErrBadMagic      = errors.New("tcpcrypt: bad Init message magic")
	ErrBadInitLength = errors.New("tcpcrypt: bad Init message length")
	ErrMalformedInit = errors.New("tcpcrypt: malformed Init message")

	ErrIntegrity     = errors.New("tcpcrypt: frame integrity check failed")
	ErrFrameTooLarge = errors.New("tcpcrypt: frame data too large")
	ErrBadRekey      = errors.New("tcpcrypt: unexpected rekey")
	ErrDataAfterFIN  = errors.New("tcpcrypt: frame after FINp")
	ErrTruncated     = errors.New("tcpcrypt: stream ended without a FINp frame")
	ErrOffsetWrap    = errors.New("tcpcrypt: stream offset would exceed 2^64")

	ErrSessionClosed = errors.New("tcpcrypt: session closed")
	ErrBadResumption = errors.New("tcpcrypt: malformed resumption suboption")
)
