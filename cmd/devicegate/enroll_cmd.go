package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/term"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/enroll/client"
)

const enrollUsage = "enroll --url URL --code CODE --out DIR [--label L] [--root FILE | --fingerprint SHA256] [--p12-password-file F]"

// runEnroll enrolls this computer: the key is generated here and never sent.
func runEnroll(ctx context.Context, args []string, env *cliEnv) error {
	fs := newFlagSet("enroll", env.stderr)
	url := fs.String("url", "", "CA URL, e.g. https://localhost:8443")
	code := fs.String("code", "", "one-time enrollment code from the main account")
	out := fs.String("out", "", "directory for key.pem, cert.pem, chain.pem, root.pem, device.p12")
	label := fs.String("label", "", "name of this computer, shown to the main account")
	root := fs.String("root", "", "trust this root CA file")
	fingerprint := fs.String("fingerprint", "", "trust the CA root with this SHA-256 fingerprint")
	pwFile := fs.String("p12-password-file", "", "file with the .p12 password (default: prompt)")
	overwrite := fs.Bool("overwrite", false, "replace an existing key in --out")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, enrollUsage); err != nil {
		return err
	}
	if *url == "" || *code == "" || *out == "" {
		return fmt.Errorf("--url, --code and --out are required\nusage: devicegate %s", enrollUsage)
	}
	password, err := p12Password(*pwFile, env)
	if err != nil {
		return err
	}
	res, err := client.Enroll(ctx, client.Options{
		URL: *url, Code: *code, Label: *label, OutDir: *out, P12Password: password, Overwrite: *overwrite,
		Trust:     client.Trust{RootFile: *root, Fingerprint: *fingerprint},
		UserAgent: "devicegate-enroll/" + version,
	})
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		// The seeds' messages, both languages, e.g. the limit message.
		return fmt.Errorf("%s\n%s", apiErr.Message, apiErr.MessageZH)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "enrolled %s as device %s (serial %s, valid until %s), Installed (%d/%d)\n",
		res.SubAccount, res.DeviceID, res.Serial, res.NotAfter.Format("2006-01-02"), res.Installed, res.Limit)
	for _, f := range res.Files {
		fmt.Fprintf(env.stdout, "  %s\n", f)
	}
	return nil
}

// p12Password reads the password file or prompts on a terminal; never a
// fixed or empty password.
func p12Password(file string, env *cliEnv) (string, error) {
	if file != "" {
		return client.ReadPasswordFile(file)
	}
	in, ok := env.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return "", errors.New("no terminal to ask for the .p12 password: use --p12-password-file")
	}
	fmt.Fprint(env.stderr, "Password for device.p12: ")
	a, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(env.stderr)
	if err != nil {
		return "", err
	}
	fmt.Fprint(env.stderr, "Repeat the password: ")
	b, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(env.stderr)
	if err != nil {
		return "", err
	}
	if string(a) != string(b) {
		return "", errors.New("the passwords differ")
	}
	if len(a) < 8 {
		return "", errors.New("the .p12 password must have at least 8 characters")
	}
	return string(a), nil
}
