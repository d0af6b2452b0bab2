package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"golang.org/x/term"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/enroll/client"
)

func enrollFlags(fs *flag.FlagSet) commandRun {
	var o client.Options
	fs.StringVar(&o.URL, "url", "", "CA `URL`, e.g. https://localhost:8443 (required)")
	fs.StringVar(&o.Code, "code", "", "one-time enrollment `CODE` from the main account (required)")
	fs.StringVar(&o.OutDir, "out", "", "`DIR` for key.pem, cert.pem, chain.pem, root.pem, device.p12 (required)")
	fs.StringVar(&o.Label, "label", "", "name `L` of this computer, shown to the main account")
	fs.StringVar(&o.Trust.RootFile, "root", "", "trust this root CA `FILE`")
	fs.StringVar(&o.Trust.Fingerprint, "fingerprint", "", "trust the CA root with this SHA-256 fingerprint `FP`")
	pwFile := fs.String("p12-password-file", "", "`F`: file with the .p12 password (default: prompt)")
	fs.BoolVar(&o.Overwrite, "overwrite", false, "replace an existing key in --out")
	return func(ctx context.Context, _ []string, env *cliEnv) error { return runEnroll(ctx, o, *pwFile, env) }
}

// runEnroll enrolls this computer: the key is generated here and never sent.
func runEnroll(ctx context.Context, o client.Options, pwFile string, env *cliEnv) error {
	if o.URL == "" || o.Code == "" || o.OutDir == "" {
		return errors.New("--url, --code and --out are required (devicegate enroll --help)")
	}
	password, err := p12Password(pwFile, env)
	if err != nil {
		return err
	}
	o.P12Password = password
	res, err := client.Enroll(ctx, client.Options{
		URL: o.URL, Code: o.Code, Label: o.Label, OutDir: o.OutDir, P12Password: o.P12Password, Overwrite: o.Overwrite,
		Trust:     o.Trust,
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
