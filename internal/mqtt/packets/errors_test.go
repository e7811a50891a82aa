package packets

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestErrors(t *testing.T) {
	err := malformed("PUBLISH topic contains a wildcard")
	if !errors.Is(err, ErrMalformed) || errors.Is(err, ErrProtocolError) {
		t.Fatal("Is by kind")
	}
	wrapped := fmt.Errorf("client x: %w", err)
	if !errors.Is(wrapped, ErrMalformed) || CodeOf(wrapped) != MalformedPacket {
		t.Fatal("wrapped")
	}
	if !strings.Contains(err.Error(), "malformed packet: PUBLISH topic") {
		t.Fatalf("message %q", err.Error())
	}
	if errors.Is(ErrProtocolName, ErrUnsupportedVersion) || errors.Is(ErrUnsupportedVersion, ErrProtocolName) {
		t.Fatal("protocol name and version errors must differ")
	}
	if CodeOf(nil) != Success || CodeOf(io.EOF) != UnspecifiedError || CodeOf(ErrPacketTooLarge) != PacketTooLarge {
		t.Fatal("CodeOf")
	}
	if CodeOf(protocolErr("x")) != ProtocolError || ErrProtocolError.Error() != "packets: protocol error" {
		t.Fatal("protocol error")
	}
}

func TestConnackCodeV3(t *testing.T) {
	for in, want := range map[ReasonCode]ReasonCode{
		Success:                      ConnAccepted,
		UnsupportedProtocolVersion:   ConnRefusedProtocolVersion,
		ClientIDNotValid:             ConnRefusedIdentifierRejected,
		ServerUnavailable:            ConnRefusedServerUnavailable,
		ServerBusy:                   ConnRefusedServerUnavailable,
		BadUsernameOrPassword:        ConnRefusedBadUsernameOrPassword,
		NotAuthorized:                ConnRefusedNotAuthorized,
		Banned:                       ConnRefusedNotAuthorized,
		UnspecifiedError:             ConnRefusedNotAuthorized,
		ConnRefusedServerUnavailable: ConnRefusedServerUnavailable, // already 3.1.1
	} {
		if got := ConnackCodeV3(in); got != want {
			t.Errorf("ConnackCodeV3(%#x) = %#x, want %#x", byte(in), byte(got), byte(want))
		}
	}
}

func TestReasonCodeString(t *testing.T) {
	if Success.String() != "success" || TopicAliasInvalid.String() != "topic alias invalid" ||
		ReasonCode(0x7F).String() != "reason code 0x7f" || ConnRefusedNotAuthorized.String() == "" {
		t.Fatal("ReasonCode.String")
	}
	for c := range 256 {
		if ReasonCode(c).String() == "" {
			t.Fatalf("empty name for %#x", c)
		}
	}
}
