package packet

// Error is the error type of this package. The exported constants are the
// categories callers test for with errors.Is; the package also returns
// more specific values (with better messages) that match their category.
//
// Error is a small integer so that returning one as an error value does
// not allocate.
type Error uint8

// Error categories.
const (
	// ErrTruncated: the buffer is shorter than the headers say.
	ErrTruncated Error = iota + 1
	// ErrBadHeader: an IP or TCP header field has an impossible value.
	ErrBadHeader
	// ErrNotTCP: the packet is IP but carries no TCP header (another
	// protocol, ESP, or No Next Header).
	ErrNotTCP
	// ErrFragment: the packet is an IP fragment. A first fragment holds
	// only part of the TCP segment and a later one holds no TCP header, so
	// neither can be rewritten; callers pass fragments through.
	ErrFragment
	// ErrBadOptions: the TCP options are malformed (length below 2, or an
	// option runs past the header).
	ErrBadOptions
	// ErrNoOptionSpace: the options would not fit the 40-byte option space.
	ErrNoOptionSpace
	// ErrOptionNotFound: the option to replace or remove is absent.
	ErrOptionNotFound
	// ErrShortBuffer: the buffer's capacity cannot hold the grown packet.
	ErrShortBuffer
	// ErrTooLong: the packet would exceed the 16-bit IP length field.
	ErrTooLong
	// ErrInvalid: an argument is unusable (option kind 0 or 1, an address
	// of the wrong family, ...).
	ErrInvalid

	numCategories = iota
)

// Specific errors. Each matches its category with errors.Is.
const (
	errIPEmpty Error = numCategories + 1 + iota
	errIPVersion
	errIPv4Short
	errIPv4IHL
	errIPv4TotalLenShort
	errIPv4TotalLenBuf
	errIPv4FirstFrag
	errIPv4LaterFrag
	errIPv6Short
	errIPv6PayloadLenBuf
	errIPv6ExtShort
	errIPv6HopByHop
	errIPv6FirstFrag
	errIPv6LaterFrag
	errTCPShort
	errTCPDataOffset
	errTCPHeaderBuf
	errOptTruncated
	errOptLength
	errOptOverrun
	errOptKind
	errOptData
	errAddrFamily
	errMixedFamily
)

var errInfo = [...]struct {
	cat Error
	msg string
}{
	ErrTruncated:      {ErrTruncated, "packet: truncated"},
	ErrBadHeader:      {ErrBadHeader, "packet: bad header"},
	ErrNotTCP:         {ErrNotTCP, "packet: not TCP"},
	ErrFragment:       {ErrFragment, "packet: IP fragment"},
	ErrBadOptions:     {ErrBadOptions, "packet: malformed TCP options"},
	ErrNoOptionSpace:  {ErrNoOptionSpace, "packet: no TCP option space"},
	ErrOptionNotFound: {ErrOptionNotFound, "packet: TCP option not found"},
	ErrShortBuffer:    {ErrShortBuffer, "packet: buffer capacity too small"},
	ErrTooLong:        {ErrTooLong, "packet: packet too long"},
	ErrInvalid:        {ErrInvalid, "packet: invalid argument"},

	errIPEmpty:           {ErrTruncated, "packet: empty packet"},
	errIPVersion:         {ErrBadHeader, "packet: IP version is neither 4 nor 6"},
	errIPv4Short:         {ErrTruncated, "packet: IPv4 header truncated"},
	errIPv4IHL:           {ErrBadHeader, "packet: IPv4 header length below 20"},
	errIPv4TotalLenShort: {ErrBadHeader, "packet: IPv4 total length below header length"},
	errIPv4TotalLenBuf:   {ErrTruncated, "packet: IPv4 total length exceeds buffer"},
	errIPv4FirstFrag:     {ErrFragment, "packet: IPv4 first fragment"},
	errIPv4LaterFrag:     {ErrFragment, "packet: IPv4 non-first fragment"},
	errIPv6Short:         {ErrTruncated, "packet: IPv6 header truncated"},
	errIPv6PayloadLenBuf: {ErrTruncated, "packet: IPv6 payload length exceeds buffer"},
	errIPv6ExtShort:      {ErrTruncated, "packet: IPv6 extension header truncated"},
	errIPv6HopByHop:      {ErrBadHeader, "packet: IPv6 Hop-by-Hop header not first"},
	errIPv6FirstFrag:     {ErrFragment, "packet: IPv6 first fragment"},
	errIPv6LaterFrag:     {ErrFragment, "packet: IPv6 non-first fragment"},
	errTCPShort:          {ErrTruncated, "packet: TCP header truncated"},
	errTCPDataOffset:     {ErrBadHeader, "packet: TCP data offset below 5"},
	errTCPHeaderBuf:      {ErrTruncated, "packet: TCP header length exceeds segment"},
	errOptTruncated:      {ErrBadOptions, "packet: TCP option length byte missing"},
	errOptLength:         {ErrBadOptions, "packet: TCP option length below 2"},
	errOptOverrun:        {ErrBadOptions, "packet: TCP option runs past header"},
	errOptKind:           {ErrInvalid, "packet: option kind 0 (EOL) or 1 (NOP) cannot carry data"},
	errOptData:           {ErrNoOptionSpace, "packet: option data longer than the option space"},
	errAddrFamily:        {ErrInvalid, "packet: address of the wrong family"},
	errMixedFamily:       {ErrInvalid, "packet: source and destination of different families"},
}

func (e Error) Error() string {
	if int(e) < len(errInfo) && errInfo[e].msg != "" {
		return errInfo[e].msg
	}
	return "packet: unknown error"
}

// Is reports whether e belongs to the category target, so that
// errors.Is(err, ErrTruncated) holds for every kind of truncation.
func (e Error) Is(target error) bool {
	t, ok := target.(Error)
	return ok && e.Category() == t
}

// Category returns the exported category constant e belongs to.
func (e Error) Category() Error {
	if int(e) < len(errInfo) {
		return errInfo[e].cat
	}
	return e
}
