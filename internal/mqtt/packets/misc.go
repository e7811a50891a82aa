package packets

// Pingreq is the PINGREQ packet, a client's keep-alive probe.
type Pingreq struct{}

// Type returns PINGREQ.
func (p *Pingreq) Type() Type { return PINGREQ }

// Decode checks that the PINGREQ has an empty body.
func (p *Pingreq) Decode(fh FixedHeader, body []byte, _ Version) error {
	return decodeEmpty(fh, body, PINGREQ)
}

// Append encodes the PINGREQ.
func (p *Pingreq) Append(dst []byte, _ Version) ([]byte, error) {
	return append(dst, byte(PINGREQ)<<4, 0), nil
}

// Pingresp is the PINGRESP packet, the server's answer to PINGREQ.
type Pingresp struct{}

// Type returns PINGRESP.
func (p *Pingresp) Type() Type { return PINGRESP }

// Decode checks that the PINGRESP has an empty body.
func (p *Pingresp) Decode(fh FixedHeader, body []byte, _ Version) error {
	return decodeEmpty(fh, body, PINGRESP)
}

// Append encodes the PINGRESP.
func (p *Pingresp) Append(dst []byte, _ Version) ([]byte, error) {
	return append(dst, byte(PINGRESP)<<4, 0), nil
}

// decodeEmpty checks a packet that has no variable header or payload.
func decodeEmpty(fh FixedHeader, body []byte, t Type) error {
	if err := begin(fh, body, t); err != nil {
		return err
	}
	if len(body) != 0 {
		// 3.12 / 3.13: PINGREQ and PINGRESP have no variable header or payload.
		return malformed(t.String() + " has a body")
	}
	return nil
}

// Disconnect is the DISCONNECT packet. In 3.1.1 only a client sends it and
// it carries nothing; in v5 either side sends it with a reason.
type Disconnect struct {
	ReasonCode ReasonCode // v5 only
	Props      Properties // v5 only
}

// Type returns DISCONNECT.
func (p *Disconnect) Type() Type { return DISCONNECT }

// Decode parses a DISCONNECT body. In v5 an empty body means Normal
// disconnection and a one-byte body has no properties (3.14.2.1).
func (p *Disconnect) Decode(fh FixedHeader, body []byte, v Version) error {
	if err := begin(fh, body, DISCONNECT); err != nil {
		return err
	}
	if v != V5 {
		p.ReasonCode = Success
		p.Props.Reset()
		if len(body) != 0 {
			// 3.14 (3.1.1): DISCONNECT has no variable header or payload.
			return malformed("DISCONNECT has a body")
		}
		return nil
	}
	return decodeReason(&p.ReasonCode, &p.Props, body, "DISCONNECT", &disconnectCodes, &disconnectProps)
}

// Append encodes the DISCONNECT in its shortest form.
func (p *Disconnect) Append(dst []byte, v Version) ([]byte, error) {
	if v != V5 {
		return append(dst, byte(DISCONNECT)<<4, 0), nil
	}
	return appendReason(dst, DISCONNECT, p.ReasonCode, &p.Props, &disconnectProps)
}

// Auth is the AUTH packet of MQTT 5 extended authentication.
type Auth struct {
	ReasonCode ReasonCode
	Props      Properties
}

// Type returns AUTH.
func (p *Auth) Type() Type { return AUTH }

// Decode parses an AUTH body. AUTH does not exist before MQTT 5, so it is a
// protocol error for any other version.
func (p *Auth) Decode(fh FixedHeader, body []byte, v Version) error {
	if err := begin(fh, body, AUTH); err != nil {
		return err
	}
	if v != V5 {
		// Packet type 15 is reserved in 3.1.1.
		return protocolErr("AUTH packet before MQTT 5")
	}
	// 3.15.2.1: an empty body means Success with no properties.
	return decodeReason(&p.ReasonCode, &p.Props, body, "AUTH", &authCodes, &authProps)
}

// Append encodes the AUTH in its shortest form; it fails for versions
// before 5.
func (p *Auth) Append(dst []byte, v Version) ([]byte, error) {
	if v != V5 {
		return dst, protocolErr("AUTH packet before MQTT 5")
	}
	return appendReason(dst, AUTH, p.ReasonCode, &p.Props, &authProps)
}

// decodeReason parses the v5 body shared by DISCONNECT and AUTH: an
// optional reason code followed by optional properties.
func decodeReason(code *ReasonCode, props *Properties, body []byte, name string, codes *codeSet, rules *propRules) error {
	*code = Success
	props.Reset()
	r := reader{b: body}
	if r.left() > 0 {
		*code = ReasonCode(r.u8("reason code"))
		if !codes.has(*code) {
			return protocolErr(name + " reason code " + code.String() + " is not valid")
		}
	}
	if r.left() > 0 {
		props.decode(&r, rules)
	}
	return r.done(name)
}

// appendReason encodes DISCONNECT or AUTH, leaving out what may be left out.
func appendReason(dst []byte, t Type, code ReasonCode, props *Properties, rules *propRules) ([]byte, error) {
	enc, err := props.measure(rules)
	if err != nil {
		return dst, err
	}
	switch {
	case enc.n == 0 && code == Success:
		return append(dst, byte(t)<<4, 0), nil
	case enc.n == 0:
		return append(dst, byte(t)<<4, 1, byte(code)), nil
	}
	dst, err = header(dst, t, 0, 1+enc.wireLen())
	if err != nil {
		return dst, err
	}
	dst = append(dst, byte(code))
	return props.appendProps(dst, enc.mask, enc.n), nil
}
