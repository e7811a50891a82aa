package packets

// Connect is the CONNECT packet, the first a client sends.
type Connect struct {
	ProtocolName    string  // "MQTT", or "MQIsdp" for 3.1; empty encodes the name of the version
	ProtocolVersion Version // 0 encodes the version passed to Append
	CleanStart      bool    // Clean Session in 3.1.1
	KeepAlive       uint16  // seconds
	ClientID        string
	WillFlag        bool
	WillQoS         byte
	WillRetain      bool
	WillTopic       string
	WillPayload     []byte
	WillProps       Properties // v5 only
	UsernameFlag    bool
	PasswordFlag    bool
	Username        string
	Password        []byte
	Props           Properties // v5 only
}

// Type returns CONNECT.
func (p *Connect) Type() Type { return CONNECT }

// Connect flag bits (3.1.2.3).
const (
	connReserved   = 0x01
	connCleanStart = 0x02
	connWill       = 0x04
	connWillQoS    = 0x18
	connWillRetain = 0x20
	connPassword   = 0x40
	connUsername   = 0x80
)

// protocolName is the name each level must be announced with.
func protocolName(v Version) string {
	if v == V31 {
		return "MQIsdp"
	}
	return "MQTT"
}

// Decode parses a CONNECT body. The version comes from the packet itself, so
// v is ignored. A protocol name other than "MQTT"/"MQIsdp" gives
// ErrProtocolName; an unknown protocol level gives ErrUnsupportedVersion
// with ProtocolName and ProtocolVersion filled in, so the server can answer
// with the right CONNACK.
//
// It stays long on purpose: one step per field in the order CONNECT puts
// them on the wire (header, flags, properties, payload), which reads
// against the spec better in one place than split.
func (p *Connect) Decode(fh FixedHeader, body []byte, _ Version) error {
	if err := begin(fh, body, CONNECT); err != nil {
		return err
	}
	// Keep the property structs (and their slices' capacity) for reuse.
	wp, pp := p.WillProps, p.Props
	*p = Connect{WillProps: wp, Props: pp}
	p.WillProps.Reset()
	p.Props.Reset()

	r := reader{b: body}
	p.ProtocolName = r.str("CONNECT protocol name")
	level := Version(r.u8("CONNECT protocol level"))
	if r.err != nil {
		return r.err
	}
	p.ProtocolVersion = level
	if p.ProtocolName != "MQTT" && p.ProtocolName != "MQIsdp" {
		// [MQTT-3.1.2-1] a wrong protocol name: close without CONNACK.
		return &Error{Code: UnsupportedProtocolVersion, Reason: "protocol name " + quote(p.ProtocolName), kind: kindProtocolName}
	}
	if (level != V31 && level != V311 && level != V5) || p.ProtocolName != protocolName(level) {
		// [MQTT-3.1.2-2] an unsupported level: CONNACK 0x01 (0x84 in v5), then close.
		return &Error{Code: UnsupportedProtocolVersion, Reason: "protocol " + quote(p.ProtocolName) +
			" level " + level.String(), kind: kindVersion}
	}
	v5 := level == V5

	flags := r.u8("CONNECT flags")
	p.KeepAlive = r.u16("CONNECT keep alive")
	if r.err != nil {
		return r.err
	}
	if flags&connReserved != 0 {
		// [MQTT-3.1.2-3] the reserved flag must be 0.
		return malformed("CONNECT reserved flag is set")
	}
	p.CleanStart = flags&connCleanStart != 0
	p.WillFlag = flags&connWill != 0
	p.WillQoS = flags & connWillQoS >> 3
	p.WillRetain = flags&connWillRetain != 0
	p.PasswordFlag = flags&connPassword != 0
	p.UsernameFlag = flags&connUsername != 0
	switch {
	case !p.WillFlag && (p.WillQoS != 0 || p.WillRetain):
		// [MQTT5-3.1.2-11], [MQTT5-3.1.2-13] / [MQTT-3.1.2-11], [MQTT-3.1.2-15]
		// (3.1.1): without a will, will QoS and will retain are 0.
		return malformed("CONNECT will QoS or will retain set without the will flag")
	case p.WillQoS == 3:
		// [MQTT5-3.1.2-12] / [MQTT-3.1.2-14] will QoS 3 is malformed.
		return malformed("CONNECT will QoS is 3")
	case !v5 && p.PasswordFlag && !p.UsernameFlag:
		// [MQTT-3.1.2-22] a password needs a user name; v5 lifts this.
		return malformed("CONNECT password flag set without the user name flag")
	}

	if v5 {
		p.Props.decode(&r, &connectProps)
	}
	// [MQTT-3.1.3-4] the client identifier is a UTF-8 string. Whether an
	// empty one is acceptable is the broker's decision ([MQTT-3.1.3-6]).
	p.ClientID = r.str("CONNECT client identifier")
	if p.WillFlag {
		if v5 {
			p.WillProps.decode(&r, &willProps)
		}
		p.WillTopic = r.str("CONNECT will topic")
		if r.err == nil && !ValidTopicName(p.WillTopic) {
			// The will is published like a PUBLISH, so its topic follows
			// the same rules ([MQTT-3.3.2-2], [MQTT-4.7.3-1]).
			r.fail(malformed("CONNECT will topic is not a valid topic name"))
		}
		p.WillPayload = r.binary("CONNECT will payload")
	}
	if p.UsernameFlag {
		p.Username = r.str("CONNECT user name") // [MQTT-3.1.3-11] / [MQTT5-3.1.3-12]
	}
	if p.PasswordFlag {
		p.Password = r.binary("CONNECT password")
	}
	return r.done("CONNECT")
}

// Append encodes the CONNECT. The will is included when WillFlag is set or
// WillTopic is non-empty; user name and password when their flag is set or
// their value is non-empty.
//
// It stays long on purpose: like Decode, one step per field in wire order,
// so the two read side by side against the spec.
func (p *Connect) Append(dst []byte, v Version) ([]byte, error) {
	level := p.ProtocolVersion
	if level == 0 {
		level = v
	}
	name := p.ProtocolName
	if name == "" {
		name = protocolName(level)
	}
	v5 := level == V5
	will := p.WillFlag || p.WillTopic != ""
	user := p.UsernameFlag || p.Username != ""
	pass := p.PasswordFlag || p.Password != nil

	var flags byte
	if p.CleanStart {
		flags |= connCleanStart
	}
	if will {
		if p.WillQoS > 2 {
			return dst, malformed("CONNECT will QoS is 3")
		}
		flags |= connWill | p.WillQoS<<3
		if p.WillRetain {
			flags |= connWillRetain
		}
	} else if p.WillQoS != 0 || p.WillRetain {
		return dst, malformed("CONNECT will QoS or will retain set without a will")
	}
	if user {
		flags |= connUsername
	}
	if pass {
		if !v5 && !user {
			return dst, malformed("CONNECT password without a user name") // [MQTT-3.1.2-22]
		}
		flags |= connPassword
	}
	if len(name) > maxString || len(p.ClientID) > maxString || len(p.WillTopic) > maxString ||
		len(p.WillPayload) > maxString || len(p.Username) > maxString || len(p.Password) > maxString {
		return dst, malformed("CONNECT field longer than 65535 bytes")
	}

	rem := 2 + len(name) + 1 + 1 + 2 + 2 + len(p.ClientID)
	var props, wprops encoding
	if v5 {
		var err error
		if props, err = p.Props.measure(&connectProps); err != nil {
			return dst, err
		}
		rem += props.wireLen()
		if will {
			if wprops, err = p.WillProps.measure(&willProps); err != nil {
				return dst, err
			}
			rem += wprops.wireLen()
		}
	}
	if will {
		rem += 2 + len(p.WillTopic) + 2 + len(p.WillPayload)
	}
	if user {
		rem += 2 + len(p.Username)
	}
	if pass {
		rem += 2 + len(p.Password)
	}

	dst, err := header(dst, CONNECT, 0, rem)
	if err != nil {
		return dst, err
	}
	dst = appendString(dst, name)
	dst = append(dst, byte(level), flags)
	dst = appendU16(dst, p.KeepAlive)
	if v5 {
		dst = p.Props.appendProps(dst, props.mask, props.n)
	}
	dst = appendString(dst, p.ClientID)
	if will {
		if v5 {
			dst = p.WillProps.appendProps(dst, wprops.mask, wprops.n)
		}
		dst = appendString(dst, p.WillTopic)
		dst = appendBinary(dst, p.WillPayload)
	}
	if user {
		dst = appendString(dst, p.Username)
	}
	if pass {
		dst = appendBinary(dst, p.Password)
	}
	return dst, nil
}

// Connack is the CONNACK packet, the server's answer to CONNECT.
type Connack struct {
	SessionPresent bool
	ReasonCode     ReasonCode // a 3.1.1 return code (0-5) or an MQTT 5 reason code
	Props          Properties // v5 only
}

// Type returns CONNACK.
func (p *Connack) Type() Type { return CONNACK }

// Decode parses a CONNACK body.
func (p *Connack) Decode(fh FixedHeader, body []byte, v Version) error {
	if err := begin(fh, body, CONNACK); err != nil {
		return err
	}
	p.Props.Reset()
	r := reader{b: body}
	flags := r.u8("CONNACK flags")
	p.ReasonCode = ReasonCode(r.u8("CONNACK reason code"))
	if r.err != nil {
		return r.err
	}
	if flags&^1 != 0 {
		// 3.1.1 §3.2.2.1 / [MQTT5-3.2.2-1]: bits 7-1 of the acknowledge flags are reserved.
		return malformed("CONNACK reserved flags are set")
	}
	p.SessionPresent = flags&1 != 0
	if v == V5 {
		if !connackCodes.has(p.ReasonCode) {
			return protocolErr("CONNACK reason code " + p.ReasonCode.String() + " is not valid")
		}
		p.Props.decode(&r, &connackProps)
	} else if p.ReasonCode > ConnRefusedNotAuthorized {
		// 3.2.2.3: return codes 6-255 are reserved.
		return protocolErr("CONNACK return code is reserved")
	}
	if p.SessionPresent && p.ReasonCode != Success {
		// [MQTT-3.2.2-4] / [MQTT5-3.2.2-6]: a refusal has Session Present 0.
		r.fail(protocolErr("CONNACK refuses the connection with session present set"))
	}
	return r.done("CONNACK")
}

// Append encodes the CONNACK. For 3.1.1 a reason code above 5 is mapped
// with ConnackCodeV3, so a caller may use MQTT 5 codes throughout.
func (p *Connack) Append(dst []byte, v Version) ([]byte, error) {
	var flags byte
	if p.SessionPresent {
		flags = 1
	}
	if v != V5 {
		dst, _ = header(dst, CONNACK, 0, 2)
		return append(dst, flags, byte(ConnackCodeV3(p.ReasonCode))), nil
	}
	props, err := p.Props.measure(&connackProps)
	if err != nil {
		return dst, err
	}
	dst, err = header(dst, CONNACK, 0, 2+props.wireLen())
	if err != nil {
		return dst, err
	}
	dst = append(dst, flags, byte(p.ReasonCode))
	return p.Props.appendProps(dst, props.mask, props.n), nil
}

// quote renders a protocol name for an error message without fmt.
func quote(s string) string {
	if len(s) > 32 {
		s = s[:32] + "..."
	}
	return "\"" + s + "\""
}
