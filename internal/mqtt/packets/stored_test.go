package packets

import (
	"bytes"
	"reflect"
	"testing"
)

// A PUBLISH property block survives the trip to a store and back, and a
// damaged one is an error rather than a wrong message.
func TestMessagePropsRoundTrip(t *testing.T) {
	p := v5PublishProps()
	p.Clear(PropTopicAlias)
	b, err := AppendMessageProps(nil, &p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMessageProps(b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := AppendMessageProps(nil, got)
	if !bytes.Equal(again, b) || got.ContentType != p.ContentType || !reflect.DeepEqual(got.User, p.User) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, p)
	}
	if _, err := DecodeMessageProps(b[:len(b)-1]); err == nil {
		t.Fatal("truncated block decoded")
	}
	if _, err := DecodeMessageProps(append(b, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	var will Properties
	will.Set(PropWillDelay)
	if _, err := AppendMessageProps(nil, &will); err == nil {
		t.Fatal("a property a PUBLISH cannot carry was stored")
	}
}
