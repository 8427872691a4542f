// Package icons holds the tray icon's artwork: a shield with a padlock in
// four states, drawn as SVG (the *.svg files here are the sources) and
// rendered to PNG and to multi-size ICO by `go generate` (internal/mkicons,
// which needs rsvg-convert from Debian's librsvg2-bin; `make tray-icons`
// installs it). The generated files are committed and embedded.
package icons

import (
	"embed"
	"fmt"
)

//go:generate go run ./internal/mkicons -dir .

// Name names one of the four icons.
type Name string

const (
	// Off: grey shield, open padlock. Encryption is switched off.
	Off Name = "off"
	// On: blue shield, closed padlock. On, but no connection is encrypted.
	On Name = "on"
	// Encrypted: green shield, padlock with dots. Connections are encrypted.
	Encrypted Name = "encrypted"
	// Error: red shield, exclamation mark. tcpincd cannot be asked.
	Error Name = "error"
)

// All lists every icon.
var All = []Name{Off, On, Encrypted, Error}

// PNGSizes are the rendered PNG sizes (pixels a side); ICOSizes the sizes
// each ICO file holds, smallest first.
var (
	PNGSizes = []int{16, 24, 32, 48, 64, 128}
	ICOSizes = []int{16, 24, 32, 48, 64}
)

// TraySize is the PNG size handed to the tray on Linux and macOS: the
// StatusNotifierItem host and AppKit scale it to the panel, and 64 pixels
// stay sharp on a HiDPI menu bar.
const TraySize = 64

//go:embed png/*.png ico/*.ico
var files embed.FS

// PNG returns the icon n rendered at size pixels, or an error if there is
// no such rendering.
func PNG(n Name, size int) ([]byte, error) {
	return files.ReadFile(fmt.Sprintf("png/%s-%d.png", n, size))
}

// ICO returns the icon n as a Windows icon file holding every ICOSizes
// rendering.
func ICO(n Name) ([]byte, error) {
	return files.ReadFile(fmt.Sprintf("ico/%s.ico", n))
}

// Tray returns the bytes fyne.io/systray wants for icon n on this OS: ICO
// on Windows, PNG elsewhere. It panics for an unknown name: the names are
// constants and the files are embedded, so that is a programming error.
func Tray(n Name) []byte {
	b, err := trayBytes(n)
	if err != nil {
		panic(fmt.Sprintf("icons: %v", err))
	}
	return b
}
