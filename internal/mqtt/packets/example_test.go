package packets_test

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

// Encode a PUBLISH for MQTT 3.1.1, then take the bytes apart as the broker
// does: the fixed header first (it says how long the rest is), then the
// body, decoded into a reused struct. Decoded strings and payloads alias
// the input bytes.
func ExamplePublish() {
	out := packets.Publish{QoS: 1, PacketID: 7, Topic: "a/b", Payload: []byte("hi")}
	raw, err := out.Append(nil, packets.V311)
	if err != nil {
		panic(err)
	}
	fmt.Printf("% x\n", raw)

	fh, n, err := packets.DecodeFixedHeader(raw)
	if err != nil {
		panic(err)
	}
	fmt.Println(fh.Type, "with", fh.Remaining, "bytes after a", n, "byte header")

	var in packets.Publish
	if err := in.Decode(fh, raw[n:n+fh.Remaining], packets.V311); err != nil {
		panic(err)
	}
	fmt.Printf("topic %q, packet id %d, QoS %d, payload %q\n", in.Topic, in.PacketID, in.QoS, in.Payload)
	// Output:
	// 32 09 00 03 61 2f 62 00 07 68 69
	// PUBLISH with 9 bytes after a 2 byte header
	// topic "a/b", packet id 7, QoS 1, payload "hi"
}

// MQTT 5 packets carry properties; ReadPacket reads one whole packet from
// a stream (a test's or a client's connection) and decodes it.
func ExampleReadPacket() {
	sub := packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{
		{Filter: "sensors/#", QoS: 1, NoLocal: true},
		{Filter: "$share/workers/jobs", QoS: 2},
	}}
	sub.Props.User = []packets.UserProperty{{Key: "team", Value: "ops"}}
	raw, err := sub.Append(nil, packets.V5)
	if err != nil {
		panic(err)
	}

	p, err := packets.ReadPacket(bytes.NewReader(raw), packets.V5, 1024)
	if err != nil {
		panic(err)
	}
	got := p.(*packets.Subscribe)
	for _, s := range got.Subscriptions {
		fmt.Printf("%s QoS %d no-local %v\n", s.Filter, s.QoS, s.NoLocal)
	}
	fmt.Println(got.Props.User[0].Key, "=", got.Props.User[0].Value)

	// A packet over the size limit is refused before its body is read.
	_, err = packets.ReadPacket(bytes.NewReader(raw), packets.V5, 16)
	fmt.Println(errors.Is(err, packets.ErrPacketTooLarge))
	// Output:
	// sensors/# QoS 1 no-local true
	// $share/workers/jobs QoS 2 no-local false
	// team = ops
	// true
}
