package icons

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"tcpinc.dev/tcpinc/cmd/tcpinc-tray/icons/internal/ico"
)

// TestSourcesUnchanged fails when an SVG source was edited without
// regenerating the PNG and ICO files from it.
func TestSourcesUnchanged(t *testing.T) {
	f, err := os.Open("SOURCES.sha256")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := make(map[string]bool)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, file, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("malformed line %q in SOURCES.sha256", sc.Text())
		}
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(src)
		if hex.EncodeToString(h[:]) != sum {
			t.Errorf("%s changed since the icons were rendered: run 'make tray-icons' (or go generate ./cmd/tcpinc-tray/icons) and commit the result", file)
		}
		seen[file] = true
	}
	// Every SVG here is a source and must be listed.
	svgs, err := filepath.Glob("*.svg")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range All {
		if !slices.Contains(svgs, string(n)+".svg") {
			t.Errorf("%s.svg is missing", n)
		}
	}
	for _, f := range svgs {
		if !seen[f] {
			t.Errorf("SOURCES.sha256 does not list %s: run 'make tray-icons'", f)
		}
	}
}

func TestPNGs(t *testing.T) {
	for _, n := range All {
		for _, size := range PNGSizes {
			p, err := PNG(n, size)
			if err != nil {
				t.Fatalf("%s at %d: %v", n, size, err)
			}
			img, err := png.Decode(bytes.NewReader(p))
			if err != nil {
				t.Fatalf("%s at %d: %v", n, size, err)
			}
			if b := img.Bounds(); b.Dx() != size || b.Dy() != size {
				t.Errorf("%s-%d.png is %dx%d", n, size, b.Dx(), b.Dy())
			}
			// The shield leaves the corners transparent and fills the
			// middle.
			if _, _, _, a := img.At(0, 0).RGBA(); a != 0 {
				t.Errorf("%s-%d.png: top-left corner is not transparent", n, size)
			}
			if _, _, _, a := img.At(size/2, size/2).RGBA(); a != 0xffff {
				t.Errorf("%s-%d.png: centre is not opaque", n, size)
			}
		}
	}
}

// TestColours checks that each state has the colour the docs promise, so
// a mixed-up rendering (green for off, say) cannot pass.
func TestColours(t *testing.T) {
	want := map[Name]string{Off: "grey", On: "blue", Encrypted: "green", Error: "red"}
	for _, n := range All {
		p, err := PNG(n, 64)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(p))
		if err != nil {
			t.Fatal(err)
		}
		if got := dominant(img); got != want[n] {
			t.Errorf("icon %s is mostly %s, want %s", n, got, want[n])
		}
	}
}

// dominant classifies the average colour of the opaque, non-white pixels
// (the shield without its padlock).
func dominant(img image.Image) string {
	var r, g, b, n uint64
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			pr, pg, pb, pa := img.At(x, y).RGBA()
			if pa < 0xf000 || (pr > 0xe000 && pg > 0xe000 && pb > 0xe000) {
				continue
			}
			r, g, b, n = r+uint64(pr>>8), g+uint64(pg>>8), b+uint64(pb>>8), n+1
		}
	}
	if n == 0 {
		return "empty"
	}
	r, g, b = r/n, g/n, b/n
	hi, lo := max(r, g, b), min(r, g, b)
	switch {
	case hi-lo < 24:
		return "grey"
	case hi == r:
		return "red"
	case hi == g:
		return "green"
	default:
		return "blue"
	}
}

// TestICOs checks each ICO holds exactly the committed PNGs at ICOSizes,
// i.e. that it was built from the PNGs beside it.
func TestICOs(t *testing.T) {
	for _, n := range All {
		data, err := ICO(n)
		if err != nil {
			t.Fatal(err)
		}
		imgs, err := ico.Decode(data)
		if err != nil {
			t.Fatalf("%s.ico: %v", n, err)
		}
		if len(imgs) != len(ICOSizes) {
			t.Fatalf("%s.ico holds %d images, want %d", n, len(imgs), len(ICOSizes))
		}
		var pngs [][]byte
		for i, size := range ICOSizes {
			p, err := PNG(n, size)
			if err != nil {
				t.Fatal(err)
			}
			if imgs[i].Width != size || !bytes.Equal(imgs[i].PNG, p) {
				t.Errorf("%s.ico image %d is not png/%s-%d.png: regenerate the icons", n, i, n, size)
			}
			pngs = append(pngs, p)
		}
		again, err := ico.Encode(pngs)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, data) {
			t.Errorf("%s.ico differs from what the PNGs encode to: regenerate the icons", n)
		}
	}
}

func TestTray(t *testing.T) {
	for _, n := range All {
		if len(Tray(n)) == 0 {
			t.Errorf("Tray(%s) is empty", n)
		}
	}
	if _, err := PNG("nonesuch", 16); err == nil {
		t.Error("PNG of an unknown icon succeeded")
	}
}
