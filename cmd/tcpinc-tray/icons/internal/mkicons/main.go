// Command mkicons renders the tray's SVG icon sources into the PNG and ICO
// files that the icons package embeds. It runs from `go generate` in
// cmd/tcpinc-tray/icons (or `make tray-icons`, which also installs
// rsvg-convert from Debian's librsvg2-bin).
//
// A source named <state>-<size>.svg, drawn on that size's pixel grid,
// replaces <state>.svg for that size (the 16-pixel icons have one).
//
// The PNGs are re-encoded by image/png so that their bytes depend only on
// the pixels rsvg-convert produced, and SOURCES.sha256 records the SVGs
// they came from, so a test can tell when a source changed without a
// regeneration.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"tcpinc.dev/tcpinc/cmd/tcpinc-tray/icons/internal/ico"
)

// These lists must match the icons package (its test checks the files).
var (
	states   = []string{"off", "on", "encrypted", "error"}
	pngSizes = []int{16, 24, 32, 48, 64, 128}
	icoSizes = []int{16, 24, 32, 48, 64}
)

func main() {
	dir := flag.String("dir", ".", "the icons directory (SVG sources in, png/ and ico/ out)")
	flag.Parse()
	if err := run(*dir); err != nil {
		fmt.Fprintf(os.Stderr, "mkicons: %v\n", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	rsvg, err := exec.LookPath("rsvg-convert")
	if err != nil {
		return fmt.Errorf("rsvg-convert not found: install librsvg2-bin (make tray-icons does so as root)")
	}
	for _, d := range []string{"png", "ico"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	var sums strings.Builder
	hashed := make(map[string]bool)
	for _, st := range states {
		byS := make(map[int][]byte)
		for _, n := range pngSizes {
			// A source drawn for one size (on its pixel grid) wins over
			// the general one.
			name := fmt.Sprintf("%s-%d.svg", st, n)
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				name = st + ".svg"
			}
			svg := filepath.Join(dir, name)
			src, err := os.ReadFile(svg)
			if err != nil {
				return err
			}
			if !hashed[name] {
				h := sha256.Sum256(src)
				fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(h[:]), name)
				hashed[name] = true
			}
			out, err := exec.Command(rsvg, "--width", fmt.Sprint(n), "--height", fmt.Sprint(n), "--format", "png", svg).Output()
			if err != nil {
				return fmt.Errorf("rendering %s at %d px: %w", svg, n, err)
			}
			p, err := canonical(out, n)
			if err != nil {
				return fmt.Errorf("rendering %s at %d px: %w", svg, n, err)
			}
			byS[n] = p
			if err := os.WriteFile(filepath.Join(dir, "png", fmt.Sprintf("%s-%d.png", st, n)), p, 0o644); err != nil {
				return err
			}
		}
		var set [][]byte
		for _, n := range icoSizes {
			set = append(set, byS[n])
		}
		ic, err := ico.Encode(set)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "ico", st+".ico"), ic, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "SOURCES.sha256"), []byte(sums.String()), 0o644)
}

// canonical decodes a PNG, checks its size and encodes it again with
// image/png's best compression.
func canonical(p []byte, n int) ([]byte, error) {
	img, err := png.Decode(bytes.NewReader(p))
	if err != nil {
		return nil, err
	}
	if b := img.Bounds(); b.Dx() != n || b.Dy() != n {
		return nil, fmt.Errorf("got %dx%d", b.Dx(), b.Dy())
	}
	// Normalise to NRGBA so the encoding does not depend on the decoder's
	// choice of image type.
	nrgba := image.NewNRGBA(img.Bounds())
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			nrgba.Set(x, y, img.At(x, y))
		}
	}
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&b, nrgba); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
