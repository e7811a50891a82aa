package admin

import (
	"errors"
	"net/http"

	"github.com/mqttd/mqttd/internal/admin/adminapi"
	"github.com/mqttd/mqttd/internal/mqtt"
	"github.com/mqttd/mqttd/internal/mqtt/packets"
)

func retainedJSON(m *mqtt.Message) adminapi.RetainedMessage {
	out := adminapi.RetainedMessage{
		Topic:         m.Topic,
		PayloadBase64: m.Payload,
		QOS:           int(m.QoS),
		StoredAt:      m.Created.UTC(),
		Properties:    propsJSON(m.Props),
	}
	if out.PayloadBase64 == nil {
		out.PayloadBase64 = []byte{}
	}
	return out
}

// propsJSON is the API's view of a message's MQTT 5 properties; nil when
// it has none.
func propsJSON(p *packets.Properties) *adminapi.MessageProperties {
	if p == nil {
		return nil
	}
	var out adminapi.MessageProperties
	some := false
	if p.Has(packets.PropPayloadFormat) {
		v := int(p.PayloadFormat)
		out.PayloadFormatIndicator, some = &v, true
	}
	if p.Has(packets.PropMessageExpiry) {
		v := int64(p.MessageExpiry)
		out.MessageExpiryInterval, some = &v, true
	}
	if p.Has(packets.PropContentType) {
		v := p.ContentType
		out.ContentType, some = &v, true
	}
	if p.Has(packets.PropResponseTopic) {
		v := p.ResponseTopic
		out.ResponseTopic, some = &v, true
	}
	if p.Has(packets.PropCorrelationData) {
		out.CorrelationDataBase64, some = p.CorrelationData, true
	}
	for _, u := range p.User {
		out.UserProperties, some = append(out.UserProperties, adminapi.UserProperty{Key: u.Key, Value: u.Value}), true
	}
	if !some {
		return nil
	}
	return &out
}

// propsFrom turns the API's properties into MQTT 5 properties; nil for
// none.
func propsFrom(in *adminapi.MessageProperties) (*packets.Properties, error) {
	if in == nil {
		return nil, nil
	}
	var p packets.Properties
	if v := in.PayloadFormatIndicator; v != nil {
		if *v != 0 && *v != 1 {
			return nil, errors.New("properties.payload_format_indicator must be 0 (bytes) or 1 (UTF-8)")
		}
		p.PayloadFormat = byte(*v)
		p.Set(packets.PropPayloadFormat)
	}
	if v := in.MessageExpiryInterval; v != nil {
		if *v < 0 || *v > 0xFFFFFFFF {
			return nil, errors.New("properties.message_expiry_interval must be from 0 to 4294967295 seconds")
		}
		p.MessageExpiry = uint32(*v)
		p.Set(packets.PropMessageExpiry)
	}
	if v := in.ContentType; v != nil {
		p.ContentType = *v
		p.Set(packets.PropContentType)
	}
	if v := in.ResponseTopic; v != nil {
		if !packets.ValidTopicName(*v) {
			return nil, errors.New("properties.response_topic must be a topic name (no + or #)")
		}
		p.ResponseTopic = *v
		p.Set(packets.PropResponseTopic)
	}
	if in.CorrelationDataBase64 != nil {
		p.CorrelationData = in.CorrelationDataBase64
		p.Set(packets.PropCorrelationData)
	}
	for _, u := range in.UserProperties {
		p.User = append(p.User, packets.UserProperty{Key: u.Key, Value: u.Value})
	}
	return &p, nil
}

// GET /retained?filter=#&limit=&cursor=
func (a *API) listRetained(w http.ResponseWriter, r *http.Request) {
	p, ok := parsePaging(w, r)
	if !ok {
		return
	}
	filter := r.URL.Query().Get("filter")
	if filter == "" {
		filter = "#"
	}
	ms, err := a.Broker.RetainedMatching(filter)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error()+": '#' alone, or levels with '+' and a last '#', URL-escaped ('%23' for '#')")
		return
	}
	items, next := page(ms, func(m *mqtt.Message) string { return m.Topic }, p)
	out := adminapi.RetainedList{Items: []adminapi.RetainedMessage{}, Next: next, Total: len(ms)}
	for _, m := range items {
		out.Items = append(out.Items, retainedJSON(m))
	}
	writeJSON(w, http.StatusOK, out)
}

// GET /retained/{topic}
func (a *API) getRetained(w http.ResponseWriter, r *http.Request) {
	topic, ok := pathRest(r, "/retained/")
	if !ok {
		writeError(w, http.StatusNotFound, "give a topic: /api/v1/retained/{topic}, URL-escaped")
		return
	}
	m, ok := a.Broker.Retained(topic)
	if !ok {
		writeError(w, http.StatusNotFound, "no retained message on topic "+topic)
		return
	}
	writeJSON(w, http.StatusOK, retainedJSON(m))
}

// DELETE /retained/{topic}
func (a *API) deleteRetained(w http.ResponseWriter, r *http.Request) {
	topic, ok := pathRest(r, "/retained/")
	if !ok {
		writeError(w, http.StatusNotFound, "give a topic: /api/v1/retained/{topic}, URL-escaped")
		return
	}
	if !a.Broker.DeleteRetained(topic) {
		writeError(w, http.StatusNotFound, "no retained message on topic "+topic)
		return
	}
	writeJSON(w, http.StatusOK, adminapi.DeleteResult{Deleted: true})
}

// POST /publish
func (a *API) publish(w http.ResponseWriter, r *http.Request) {
	var req adminapi.PublishRequest
	if !a.readJSON(w, r, &req) {
		return
	}
	if req.Topic == "" {
		writeError(w, http.StatusBadRequest, `give the topic: {"topic": "a/b", "payload": "text"}`)
		return
	}
	pr := mqtt.PublishRequest{Topic: req.Topic, Payload: req.PayloadBase64}
	if req.Payload != nil {
		if req.PayloadBase64 != nil {
			writeError(w, http.StatusBadRequest, "give payload (text) or payload_base64 (bytes), not both")
			return
		}
		pr.Payload = []byte(*req.Payload)
	}
	if req.QOS != nil {
		if *req.QOS < 0 || *req.QOS > 2 {
			writeError(w, http.StatusBadRequest, "qos must be 0, 1 or 2")
			return
		}
		pr.QoS = byte(*req.QOS)
	}
	pr.Retain = req.Retain != nil && *req.Retain
	props, err := propsFrom(req.Properties)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	pr.Props = props
	n, err := a.Broker.Publish(pr)
	switch {
	case errors.Is(err, mqtt.ErrPublishTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, err.Error())
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeJSON(w, http.StatusOK, adminapi.PublishResult{Delivered: n})
	}
}
