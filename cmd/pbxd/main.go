// Command pbxd is the provisioning-and-billing daemon. See the README.
package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/pbxd/pbxd/internal/app"
)

func main() {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	os.Exit(app.Main(os.Args[1:], os.Getenv, signals, os.Stderr))
}
