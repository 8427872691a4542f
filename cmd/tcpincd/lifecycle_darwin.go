package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/kardianos/service"
)

const (
	// serviceName is the launchd label, the same as installer/darwin's
	// plist, so 'tcpincd install' and install.sh manage one daemon.
	serviceName        = "dev.tcpinc.tcpincd"
	serviceDisplayName = "tcpinc encryption service"
	serviceKind        = "a launchd daemon"
	plistPath          = "/Library/LaunchDaemons/" + serviceName + ".plist"
)

// launchdPlist is the plist 'tcpincd install' writes (kardianos/service
// 1.3 template syntax), matching installer/darwin/dev.tcpinc.tcpincd.plist:
// KeepAlive restarts tcpincd after a failure but not after a clean stop.
const launchdPlist = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>{{Name | html}}</string>
	<key>ProgramArguments</key>
	<array>
		<string>{{Path | html}}</string>
{{range Arguments}}		<string>{{. | html}}</string>
{{end}}	</array>
	<key>UserName</key>
	<string>root</string>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<dict>
		<key>SuccessfulExit</key>
		<false/>
	</dict>
	<key>ThrottleInterval</key>
	<integer>10</integer>
	<key>ExitTimeOut</key>
	<integer>30</integer>
	<key>StandardOutPath</key>
	<string>/var/log/tcpincd.log</string>
	<key>StandardErrorPath</key>
	<string>/var/log/tcpincd.log</string>
</dict>
</plist>
`

func serviceOptions() service.KeyValue {
	return service.KeyValue{"LaunchdConfig": launchdPlist}
}

// controlService uses launchctl bootstrap/bootout/kickstart for start,
// stop and restart: kardianos/service uses the legacy load/unload,
// which recent macOS versions refuse for system daemons ("Load failed:
// 5: Input/output error") and which report success when nothing
// happened.
func controlService(s service.Service, action string) error {
	switch action {
	case "start":
		return launchctl("bootstrap", "system", plistPath)
	case "stop":
		return launchctl("bootout", "system/"+serviceName)
	case "restart":
		if !loaded() {
			return launchctl("bootstrap", "system", plistPath)
		}
		return launchctl("kickstart", "-k", "system/"+serviceName)
	case "uninstall":
		if loaded() {
			if err := launchctl("bootout", "system/"+serviceName); err != nil {
				return err
			}
		}
		if _, err := os.Stat(plistPath); errors.Is(err, os.ErrNotExist) {
			return service.ErrNotInstalled
		}
		return os.Remove(plistPath)
	}
	return service.Control(s, action)
}

func loaded() bool {
	return exec.Command("launchctl", "print", "system/"+serviceName).Run() == nil
}

func launchctl(args ...string) error {
	out, err := exec.Command("launchctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("launchctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
