package packets

// A message at rest (a retained message, a queued delivery, a will) keeps
// its MQTT 5 properties as the property block of a PUBLISH, so a store need
// not know each property and a property added later is stored unchanged.

// AppendMessageProps appends p as a PUBLISH property block (length prefix
// included) to dst. It fails only for a property a PUBLISH cannot carry.
func AppendMessageProps(dst []byte, p *Properties) ([]byte, error) {
	e, err := p.measure(&publishProps)
	if err != nil {
		return dst, err
	}
	return p.appendProps(dst, e.mask, e.n), nil
}

// DecodeMessageProps reads a block AppendMessageProps wrote. The result is
// a copy: it does not alias b.
func DecodeMessageProps(b []byte) (*Properties, error) {
	r := reader{b: b}
	var p Properties
	p.decode(&r, &publishProps)
	if r.err == nil && r.off != len(b) {
		r.fail(malformed("trailing bytes after stored properties"))
	}
	if r.err != nil {
		return nil, r.err
	}
	return p.Clone(), nil
}
