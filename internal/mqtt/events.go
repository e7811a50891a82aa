// Packet events: decoding sent and received packets for the event sink,
// off the hot path (only when an event subscriber asks for them).

package mqtt

import "github.com/mqttd/mqttd/internal/mqtt/packets"

// emitPacketSent reports an encoded outbound packet to the event sink.
func (b *Broker) emitPacketSent(ci *ClientInfo, raw []byte, v packets.Version) {
	if !b.evMask().Has(EventPacketSent) {
		return
	}
	if pk := decodeCopy(raw, v); pk != nil {
		b.emit(&Event{Type: EventPacketSent, Client: ci, Packet: pk})
	}
}

// emitPacketReceived reports an inbound packet to the event sink.
func (b *Broker) emitPacketReceived(ci *ClientInfo, fh packets.FixedHeader, body []byte, v packets.Version) {
	if pk, err := packets.Decode(fh, body, v); err == nil {
		b.emit(&Event{Type: EventPacketReceived, Client: ci, Packet: pk})
	}
}

// emitConnectReceived reports a CONNECT once the client's identity is
// known, so that the event names who sent it.
func (b *Broker) emitConnectReceived(ci *ClientInfo, p *packets.Connect) {
	if b.evMask().Has(EventPacketReceived) {
		b.emit(&Event{Type: EventPacketReceived, Client: ci, Packet: p})
	}
}

// decodeCopy decodes a whole encoded packet; only the event path uses it,
// so the hot path never boxes a packet into an interface.
func decodeCopy(raw []byte, v packets.Version) packets.Packet {
	fh, n, err := packets.DecodeFixedHeader(raw)
	if err != nil {
		return nil
	}
	pk, err := packets.Decode(fh, raw[n:n+fh.Remaining], v)
	if err != nil {
		return nil
	}
	return pk
}
