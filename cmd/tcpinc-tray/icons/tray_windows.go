package icons

// Windows' notification area loads icons from .ico files.
func trayBytes(n Name) ([]byte, error) { return ICO(n) }
