package mbp

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	for _, p := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("ab"), 5000)} {
		if err := WriteFrame(&buf, FrameMessage, FlagZstd, p); err != nil {
			t.Fatal(err)
		}
		f, err := ReadFrame(&buf, 0)
		if err != nil {
			t.Fatal(err)
		}
		if f.Type != FrameMessage || f.Flags != FlagZstd || !bytes.Equal(f.Payload, p) {
			t.Fatalf("got %v %v %d bytes", f.Type, f.Flags, len(f.Payload))
		}
	}
}

func TestFrameRefusals(t *testing.T) {
	cases := []struct {
		name   string
		header []byte
		limit  int
		want   error
		naming string
	}{
		{"http client", []byte("GET / H"), 0, ErrVersion, "71"},
		{"future version", []byte{Version + 1, 0x10, 0, 0, 0, 0, 0}, 0, ErrVersion, "version 3"},
		{"unknown type", []byte{Version, 0x7f, 0, 0, 0, 0, 0}, 0, ErrType, "0x7f"},
		{"unknown flag", []byte{Version, 0x10, 0x80, 0, 0, 0, 0}, 0, ErrFlags, "0x80"},
		{"over hard limit", []byte{Version, 0x10, 0, 0x01, 0, 0, 1}, 0, ErrTooLarge, "16777217"},
		{"over configured limit", []byte{Version, 0x10, 0, 0, 0, 0x04, 1}, 1024, ErrTooLarge, "limit 1024"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(append(c.header, make([]byte, 8)...)), c.limit)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.naming) {
				t.Fatalf("err = %v, want %v naming %q", err, c.want, c.naming)
			}
		})
	}
}

func TestFrameTruncated(t *testing.T) {
	var buf bytes.Buffer
	_ = WriteFrame(&buf, FrameMessage, 0, []byte("hello"))
	b := buf.Bytes()
	for i := 1; i < len(b); i++ {
		if _, err := ReadFrame(bytes.NewReader(b[:i]), 0); err == nil || err == io.EOF {
			t.Fatalf("prefix %d: err = %v", i, err)
		}
	}
	if _, err := ReadFrame(bytes.NewReader(nil), 0); err != io.EOF {
		t.Fatalf("empty: %v", err)
	}
}
