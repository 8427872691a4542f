package ico

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func mkPNG(t testing.TB, w, h int) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewNRGBA(image.Rect(0, 0, w, h))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestRoundTrip(t *testing.T) {
	in := [][]byte{mkPNG(t, 16, 16), mkPNG(t, 32, 32), mkPNG(t, 256, 256)}
	data, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	imgs, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != len(in) {
		t.Fatalf("decoded %d images, want %d", len(imgs), len(in))
	}
	for i, want := range []int{16, 32, 256} {
		if imgs[i].Width != want || imgs[i].Height != want || !bytes.Equal(imgs[i].PNG, in[i]) {
			t.Errorf("image %d: %dx%d, same bytes %v", i, imgs[i].Width, imgs[i].Height, bytes.Equal(imgs[i].PNG, in[i]))
		}
	}
	// A 256-pixel side is stored as 0.
	if data[6+2*16] != 0 || data[6+2*16+1] != 0 {
		t.Errorf("256-pixel entry stores %d x %d", data[6+2*16], data[6+2*16+1])
	}
}

func TestEncodeRejects(t *testing.T) {
	for name, in := range map[string][][]byte{
		"none":    nil,
		"not png": {[]byte("GIF89a")},
		"too big": {mkPNG(t, 257, 16)},
	} {
		if _, err := Encode(in); err == nil {
			t.Errorf("%s: Encode succeeded", name)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good, err := Encode([][]byte{mkPNG(t, 16, 16)})
	if err != nil {
		t.Fatal(err)
	}
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, in := range map[string][]byte{
		"empty":         nil,
		"short":         good[:5],
		"cursor type":   mut(func(b []byte) []byte { b[2] = 2; return b }),
		"no images":     mut(func(b []byte) []byte { b[4] = 0; return b }),
		"short dir":     good[:6+15],
		"offset past":   mut(func(b []byte) []byte { b[6+12] = 0xff; b[6+13] = 0xff; return b }),
		"size past":     mut(func(b []byte) []byte { b[6+8] = 0xff; b[6+9] = 0xff; return b }),
		"offset in dir": mut(func(b []byte) []byte { b[6+12] = 3; return b }),
		"wrong size":    mut(func(b []byte) []byte { b[6] = 32; return b }),
		"truncated":     good[:len(good)-10],
	} {
		if _, err := Decode(in); err == nil {
			t.Errorf("%s: Decode succeeded", name)
		}
	}
}

// FuzzDecode: no input crashes Decode, and whatever it accepts encodes
// back to a file that decodes to the same images.
func FuzzDecode(f *testing.F) {
	good, err := Encode([][]byte{mkPNG(f, 16, 16), mkPNG(f, 24, 24)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	// The real icons are seeds too.
	files, _ := filepath.Glob("../../ico/*.ico")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		imgs, err := Decode(data)
		if err != nil {
			return
		}
		var pngs [][]byte
		for _, im := range imgs {
			pngs = append(pngs, im.PNG)
		}
		again, err := Encode(pngs)
		if err != nil {
			t.Fatalf("accepted icon does not re-encode: %v", err)
		}
		imgs2, err := Decode(again)
		if err != nil || len(imgs2) != len(imgs) {
			t.Fatalf("re-encoded icon does not decode the same: %v", err)
		}
	})
}
