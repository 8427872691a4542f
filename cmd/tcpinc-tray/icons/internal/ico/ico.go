// Package ico writes and reads Windows icon (.ico) files whose images are
// PNG-compressed, the form Windows has accepted since Vista and the one
// the tray's multi-size icons use.
package ico

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image/png"
)

const (
	headerLen = 6
	entryLen  = 16
	typeIcon  = 1
	// maxImages bounds a directory read from an untrusted file.
	maxImages = 64
)

// Image is one entry of an icon file.
type Image struct {
	Width, Height int
	PNG           []byte
}

// Encode builds an icon file holding the given PNG images, in order. Each
// PNG is decoded to learn its size, which must be 1..256 pixels a side.
func Encode(pngs [][]byte) ([]byte, error) {
	if len(pngs) == 0 || len(pngs) > maxImages {
		return nil, fmt.Errorf("ico: %d images; want 1 to %d", len(pngs), maxImages)
	}
	var b bytes.Buffer
	hdr := make([]byte, headerLen)
	binary.LittleEndian.PutUint16(hdr[2:], typeIcon)
	binary.LittleEndian.PutUint16(hdr[4:], uint16(len(pngs)))
	b.Write(hdr)
	off := headerLen + entryLen*len(pngs)
	for i, p := range pngs {
		cfg, err := png.DecodeConfig(bytes.NewReader(p))
		if err != nil {
			return nil, fmt.Errorf("ico: image %d: %w", i, err)
		}
		if cfg.Width < 1 || cfg.Width > 256 || cfg.Height < 1 || cfg.Height > 256 {
			return nil, fmt.Errorf("ico: image %d is %dx%d; sides must be 1 to 256 pixels", i, cfg.Width, cfg.Height)
		}
		e := make([]byte, entryLen)
		// A side of 256 is stored as 0.
		e[0] = byte(cfg.Width)
		e[1] = byte(cfg.Height)
		// e[2] colour count 0 (not palettized), e[3] reserved.
		binary.LittleEndian.PutUint16(e[4:], 1)  // colour planes
		binary.LittleEndian.PutUint16(e[6:], 32) // bits per pixel
		binary.LittleEndian.PutUint32(e[8:], uint32(len(p)))
		binary.LittleEndian.PutUint32(e[12:], uint32(off))
		b.Write(e)
		off += len(p)
	}
	for _, p := range pngs {
		b.Write(p)
	}
	return b.Bytes(), nil
}

// Decode parses an icon file written by Encode (PNG entries only) and
// returns its images, checking that each entry's stated size matches its
// PNG.
func Decode(data []byte) ([]Image, error) {
	if len(data) < headerLen {
		return nil, errors.New("ico: file too short for its header")
	}
	if binary.LittleEndian.Uint16(data[0:]) != 0 || binary.LittleEndian.Uint16(data[2:]) != typeIcon {
		return nil, errors.New("ico: not an icon file")
	}
	n := int(binary.LittleEndian.Uint16(data[4:]))
	if n == 0 || n > maxImages {
		return nil, fmt.Errorf("ico: %d images; want 1 to %d", n, maxImages)
	}
	if len(data) < headerLen+entryLen*n {
		return nil, errors.New("ico: file too short for its directory")
	}
	imgs := make([]Image, 0, n)
	for i := range n {
		e := data[headerLen+entryLen*i:][:entryLen]
		w, h := int(e[0]), int(e[1])
		if w == 0 {
			w = 256
		}
		if h == 0 {
			h = 256
		}
		size := int64(binary.LittleEndian.Uint32(e[8:]))
		off := int64(binary.LittleEndian.Uint32(e[12:]))
		if off < int64(headerLen+entryLen*n) || off+size > int64(len(data)) {
			return nil, fmt.Errorf("ico: image %d lies outside the file", i)
		}
		p := data[off : off+size]
		cfg, err := png.DecodeConfig(bytes.NewReader(p))
		if err != nil {
			return nil, fmt.Errorf("ico: image %d is not a PNG: %w", i, err)
		}
		if cfg.Width != w || cfg.Height != h {
			return nil, fmt.Errorf("ico: image %d says %dx%d but its PNG is %dx%d", i, w, h, cfg.Width, cfg.Height)
		}
		imgs = append(imgs, Image{Width: w, Height: h, PNG: p})
	}
	return imgs, nil
}
