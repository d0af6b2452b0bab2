package truststore

import "fmt"

// ManualSteps is what to run by hand where devicegate does not install
// the root itself (Windows and macOS), for the root saved at file.
func ManualSteps(goos, file, name string) string {
	switch goos {
	case "windows":
		return fmt.Sprintf(`Windows: in an administrator command prompt run
  certutil -addstore -f ROOT %s
(Chrome and Edge use the Windows store; Firefox too when security.enterprise_roots.enabled is true, the default since Firefox 68.)
To remove it later: certutil -delstore ROOT "<the root's serial number>"`, file)
	case "darwin":
		return fmt.Sprintf(`macOS: run
  sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain %s
(Safari and Chrome use the keychain; Firefox too when security.enterprise_roots.enabled is true.)
To remove it later: sudo security delete-certificate -c "<the root's common name>" /Library/Keychains/System.keychain`, file)
	}
	return fmt.Sprintf("%s: add %s (%q) to this system's trust store by hand", goos, file, name)
}
