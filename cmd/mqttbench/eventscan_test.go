package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// scanBatch must read what encoding/json reads, for every shape an event
// can take: unknown fields of every kind, escapes, whitespace, wrong types.
func TestScanBatchMatchesEncodingJSON(t *testing.T) {
	events := []string{
		`{"id":"a","seq":1,"type":"broker_message_received","time":"2026-01-02T03:04:05.1Z","broker":"b","client_id":"c","message":{"topic":"t/1","payload":"aGk=","qos":1,"retain":false,"properties":{"user_properties":[{"key":"k","value":"v"}]}}}`,
		`{ "id" : "e\"scaped\\u00e9" , "seq" : 42 , "type" : "broker_client_connected", "session": {"clean_start": true, "will": null, "keep_alive": 60, "nested": [1, [2, {"x": "]}"}]]}, "broker": "n\/1" }`,
		`{"id":"x","seq":2,"type":"t","null":null,"packet":{"type":"PUBLISH","payload":"QUJD"},"f":-1.5e-3,"t":true}`,
		`{}`,
	}
	for i := range events {
		for _, body := range []string{
			`{"events":[` + events[i] + `]}`,
			`{"other":{"events":[]},"events":[` + strings.Join(events[i:], ",") + `],"tail":[1,2]}`,
			"\n{ \"events\" : [ " + strings.Join(events[:i+1], " ,\n ") + " ] }\n",
		} {
			var want eventBatch
			if err := json.Unmarshal([]byte(body), &want); err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			got, err := scanBatch([]byte(body), nil)
			if err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			if len(got) != len(want.Events) {
				t.Fatalf("%s: %d events, encoding/json %d", body, len(got), len(want.Events))
			}
			for j := range got {
				if !reflect.DeepEqual(got[j], want.Events[j]) {
					t.Errorf("%s\nevent %d: scanBatch %+v, encoding/json %+v", body, j, got[j], want.Events[j])
				}
			}
		}
	}
	// Values of the wrong type are left empty (encoding/json would fail
	// the whole batch), so the plugin's checks catch them.
	got, err := scanBatch([]byte(`{"events":[{"seq":3.5,"id":7,"type":null,"time":"t","message":"no"},{"seq":1e3,"client_id":null,"message":{"topic":["x"],"payload":false}},{"seq":-1}]}`), nil)
	if err != nil || len(got) != 3 {
		t.Fatal(got, err)
	}
	if e := got[0]; e.Seq != 0 || e.ID != "" || e.Type != "" || e.Time != "t" || e.Message != nil {
		t.Errorf("%+v", e)
	}
	if e := got[1]; e.Seq != 0 || e.ClientID != nil || e.Message == nil || *e.Message != (eventMessage{}) {
		t.Errorf("%+v", e)
	}
	if got[2].Seq != 0 {
		t.Errorf("%+v", got[2])
	}
	for _, bad := range []string{`{"events":[`, `[]`, `{"events":{}}`, `{"events":[1]}`, `{"nothing":[]}`, `{"events":[{"id":"a"}]} x`} {
		if _, err := scanBatch([]byte(bad), nil); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func BenchmarkScanBatch(b *testing.B) {
	var parts []string
	for i := range 100 {
		parts = append(parts, fmt.Sprintf(`{"id":"0a1b2c3d4e5f-%d","seq":%d,"type":"broker_message_received","time":"2026-11-24T20:21:53.123456789Z","broker":"vm","client_id":"mqttbench-1234-p7","message":{"topic":"mqttbench/1234/7","payload":"AAAAAAAAAAcAAAAAAAAAKgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==","qos":0,"retain":false}}`, i, i+1))
	}
	body := []byte(`{"events":[` + strings.Join(parts, ",") + `]}`)
	b.Run("scanBatch", func(b *testing.B) {
		var dst []benchEvent
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			var err error
			if dst, err = scanBatch(body, dst[:0]); err != nil || len(dst) != 100 {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		var batch eventBatch
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			batch.Events = batch.Events[:0]
			if err := json.Unmarshal(body, &batch); err != nil || len(batch.Events) != 100 {
				b.Fatal(err)
			}
		}
	})
}
