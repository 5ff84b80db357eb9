package api

import "encoding/json"

// A fast path for the JSON bodies publishers send most: events whose
// strings have no escapes and whose data is a string. encoding/json spends
// most of a batch's time in reflection and scans the body three times; this
// parser scans it once. It accepts only input for which encoding/json
// gives the very same result, and reports ok=false for anything else
// (escapes, numbers, null, nested data, keys in another case, unknown or
// repeated keys, any syntax error): the caller then decodes with
// encoding/json, which also words the errors. The body must be valid UTF-8
// and trimmed of surrounding white space.

// parseBatchFast parses a JSON array of events.
func parseBatchFast(body []byte) (ins []Input, ok bool) {
	p := fastParser{b: body}
	if !p.byte('[') {
		return nil, false
	}
	ins = make([]Input, 0, 16)
	p.ws()
	if p.byte(']') {
		return ins, p.end()
	}
	for {
		ins = append(ins, Input{})
		if !p.object(&ins[len(ins)-1]) {
			return nil, false
		}
		p.ws()
		if p.byte(']') {
			return ins, p.end()
		}
		if !p.byte(',') {
			return nil, false
		}
		p.ws()
	}
}

// parseInputFast parses one JSON event.
func parseInputFast(body []byte, in *Input) bool {
	p := fastParser{b: body}
	return p.object(in) && p.end()
}

type fastParser struct {
	b    []byte
	i    int
	last string // the last topic read: a batch to one topic shares it
}

func (p *fastParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// byte consumes c if it comes next.
func (p *fastParser) byte(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *fastParser) end() bool {
	p.ws()
	return p.i == len(p.b)
}

// raw reads a string without escapes and returns it with its quotes.
func (p *fastParser) raw() ([]byte, bool) {
	start := p.i
	if !p.byte('"') {
		return nil, false
	}
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return p.b[start:p.i], true
		case c == '\\' || c < 0x20:
			return nil, false
		}
		p.i++
	}
	return nil, false
}

func (p *fastParser) str() (string, bool) {
	r, ok := p.raw()
	if !ok {
		return "", false
	}
	return string(r[1 : len(r)-1]), true
}

func (p *fastParser) topic() (string, bool) {
	r, ok := p.raw()
	if !ok {
		return "", false
	}
	if v := r[1 : len(r)-1]; string(v) != p.last {
		p.last = string(v)
	}
	return p.last, true
}

func (p *fastParser) boolean() (bool, bool) {
	switch {
	case len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "true":
		p.i += 4
		return true, true
	case len(p.b)-p.i >= 5 && string(p.b[p.i:p.i+5]) == "false":
		p.i += 5
		return false, true
	}
	return false, false
}

// object reads one event into in.
func (p *fastParser) object(in *Input) bool {
	if !p.byte('{') {
		return false
	}
	p.ws()
	if p.byte('}') {
		return true
	}
	var seen uint8
	for {
		key, ok := p.raw()
		if !ok {
			return false
		}
		p.ws()
		if !p.byte(':') {
			return false
		}
		p.ws()
		var bit uint8
		switch string(key[1 : len(key)-1]) {
		case "topic":
			bit = 1
			in.Topic, ok = p.topic()
		case "topics":
			bit = 2
			in.Topics, ok = p.topics()
		case "data":
			bit = 4
			var d []byte
			d, ok = p.raw()
			in.Data = json.RawMessage(d)
		case "event":
			bit = 8
			in.Event, ok = p.str()
		case "retain":
			bit = 16
			in.Retain, ok = p.boolean()
		case "final":
			bit = 32
			in.Final, ok = p.boolean()
		case "private":
			bit = 64
			in.Private, ok = p.boolean()
		case "id":
			bit = 128
			in.ID, ok = p.str()
		}
		if !ok || bit == 0 || seen&bit != 0 {
			return false
		}
		seen |= bit
		p.ws()
		if p.byte('}') {
			return true
		}
		if !p.byte(',') {
			return false
		}
		p.ws()
	}
}

func (p *fastParser) topics() ([]string, bool) {
	if !p.byte('[') {
		return nil, false
	}
	out := []string{}
	p.ws()
	if p.byte(']') {
		return out, true
	}
	for {
		t, ok := p.topic()
		if !ok {
			return nil, false
		}
		out = append(out, t)
		p.ws()
		if p.byte(']') {
			return out, true
		}
		if !p.byte(',') {
			return nil, false
		}
		p.ws()
	}
}
