package httpjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxDepth bounds the nesting of a JSON body DecodeStrict accepts.
const MaxDepth = 256

// DecodeStrict decodes exactly one JSON value from body into v. It refuses
// what encoding/json would let through silently: a field v does not have,
// a name given twice in one object (at any depth: the value a reader gets
// would depend on the reader), nesting deeper than MaxDepth, and anything
// after the value. The error says what is wrong, fit for a 400 answer.
func DecodeStrict(body []byte, v any) error {
	if err := CheckDuplicateKeys(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("malformed JSON: trailing data after the value")
	}
	return nil
}

// CheckDuplicateKeys reports the first object of body that names a member
// twice, and bodies nested deeper than MaxDepth. It does not report other
// syntax errors (the decoder that follows words them).
func CheckDuplicateKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		obj  bool
		keys map[string]struct{}
		key  bool // the next string token of an object is a key
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // io.EOF, or a syntax error the decoder reports
		}
		var top *frame
		if n := len(stack); n > 0 {
			top = &stack[n-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if top != nil && top.obj {
					top.key = true // the value is read: a key comes next
				}
				if len(stack) >= MaxDepth {
					return fmt.Errorf("malformed JSON: nested deeper than %d levels", MaxDepth)
				}
				stack = append(stack, frame{obj: t == '{', key: t == '{'})
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.obj && top.key {
				if top.keys == nil {
					top.keys = make(map[string]struct{})
				}
				if _, dup := top.keys[t]; dup {
					return fmt.Errorf("malformed JSON: member %q given twice in one object", clip(t))
				}
				top.keys[t] = struct{}{}
				top.key = false
				continue
			}
			if top != nil && top.obj {
				top.key = true
			}
		default:
			if top != nil && top.obj {
				top.key = true
			}
		}
	}
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
