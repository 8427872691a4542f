package tray

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Daemon is the part of tcpincd's control API the tray uses.
// control.Client satisfies it through a small adapter in the command.
type Daemon interface {
	Status() (Status, error)
	SetEnabled(on bool) error
	Close() error
}

// Dialer connects to tcpincd.
type Dialer func() (Daemon, error)

// UI draws views. Render is called from the controller's goroutine only.
type UI interface {
	Render(View)
}

// NoticeTTL is how long the outcome of a menu action stays on the notice
// line before the regular status takes it back.
const NoticeTTL = 30 * time.Second

// Controller polls tcpincd and carries out the menu's actions. Its
// methods are not safe for concurrent use: Run calls them from one
// goroutine, which also keeps the (single-threaded) control client to
// one caller.
type Controller struct {
	dial    Dialer
	ui      UI
	control string
	log     *slog.Logger
	// Now is the clock; tests replace it.
	Now func() time.Time
	// OpenStatus shows tcpincd's full status to the user (a terminal
	// running `tcpinc status`); nil disables the menu item's action.
	OpenStatus func() error

	d        Daemon // nil while disconnected
	st       Status
	err      error // why the last poll failed; nil after a good poll
	notice   string
	noticeAt time.Time
	polled   bool
}

// NewController returns a controller that dials tcpincd with dial and
// draws on ui. control is the socket path, for the details shown.
func NewController(dial Dialer, ui UI, control string, log *slog.Logger) *Controller {
	if log == nil {
		log = slog.Default()
	}
	return &Controller{dial: dial, ui: ui, control: control, log: log, Now: time.Now}
}

// Poll asks tcpincd for its status, connecting first if needed, and
// redraws. A failed call drops the connection so the next poll dials
// again: that is how the tray finds a restarted tcpincd.
func (c *Controller) Poll() {
	st, err := c.status()
	if err != nil {
		if c.err == nil || c.err.Error() != err.Error() {
			c.log.Warn("tcpincd status unavailable", "err", err)
		}
	} else if c.err != nil && c.polled {
		c.log.Info("tcpincd reachable again")
	}
	c.st, c.err, c.polled = st, err, true
	c.render()
}

func (c *Controller) status() (Status, error) {
	if err := c.connect(); err != nil {
		return Status{}, err
	}
	st, err := c.d.Status()
	if err != nil {
		c.disconnect()
		// The daemon may have restarted since the last poll, leaving
		// this connection dead while a new one would work: retry once.
		if err2 := c.connect(); err2 != nil {
			return Status{}, err2
		}
		st, err = c.d.Status()
		if err != nil {
			c.disconnect()
			return Status{}, err
		}
	}
	return st, nil
}

func (c *Controller) connect() error {
	if c.d != nil {
		return nil
	}
	d, err := c.dial()
	if err != nil {
		return err
	}
	c.d = d
	return nil
}

func (c *Controller) disconnect() {
	if c.d != nil {
		c.d.Close()
		c.d = nil
	}
}

// Toggle switches encryption to the opposite of the last polled state,
// then polls. A refusal (a user who may not control tcpincd, say) is
// shown on the notice line, not raised.
func (c *Controller) Toggle() {
	if !c.polled || c.err != nil {
		c.setNotice("tcpincd cannot be reached; nothing was changed")
		c.Poll()
		return
	}
	want := !c.st.Enabled
	verb := "off"
	if want {
		verb = "on"
	}
	err := c.setEnabled(want)
	if err != nil {
		c.log.Warn("turning encryption "+verb+" failed", "err", err)
		c.setNotice(fmt.Sprintf("Could not turn encryption %s: %v", verb, err))
	} else {
		c.log.Info("encryption turned " + verb)
		c.setNotice("")
	}
	c.Poll()
}

func (c *Controller) setEnabled(on bool) error {
	if err := c.connect(); err != nil {
		return err
	}
	err := c.d.SetEnabled(on)
	if err != nil {
		// The error may be the connection's rather than a refusal; a
		// fresh connection for the next poll costs little either way.
		c.disconnect()
	}
	return err
}

// Open runs OpenStatus and reports a failure on the notice line.
func (c *Controller) Open() {
	if c.OpenStatus == nil {
		return
	}
	if err := c.OpenStatus(); err != nil {
		c.log.Warn("opening the status window failed", "err", err)
		c.setNotice(fmt.Sprintf("Could not open a terminal: %v", err))
		c.render()
	}
}

func (c *Controller) setNotice(s string) {
	c.notice, c.noticeAt = s, c.Now()
}

func (c *Controller) render() {
	if c.notice != "" && c.Now().Sub(c.noticeAt) > NoticeTTL {
		c.notice = ""
	}
	c.ui.Render(Compute(c.st, c.err, c.notice, c.control))
}

// Close drops the connection to tcpincd.
func (c *Controller) Close() { c.disconnect() }

// Actions are the menu's clicks, as channels (fyne.io/systray's style).
type Actions struct {
	Toggle, Open <-chan struct{}
}

// Run polls every interval and serves actions until ctx ends. It polls
// once at once, so the icon is right from the start.
func (c *Controller) Run(ctx context.Context, interval time.Duration, a Actions) {
	defer c.Close()
	c.Poll()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Poll()
		case <-a.Toggle:
			c.Toggle()
		case <-a.Open:
			c.Open()
		}
	}
}

// Latch returns a channel that receives once for any number of receives
// on in since it was last drained. fyne.io/systray drops a click when
// nobody is receiving at that moment (a non-blocking send); a goroutine
// always waiting on in keeps a click made during a slow poll.
func Latch(in <-chan struct{}) <-chan struct{} {
	out := make(chan struct{}, 1)
	go func() {
		for range in {
			select {
			case out <- struct{}{}:
			default: // one pending click is enough
			}
		}
		close(out)
	}()
	return out
}
