package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/devicegate/devicegate/api"
	"github.com/devicegate/devicegate/enroll/client"
)

func renewFlags(fs *flag.FlagSet) commandRun {
	var o client.RenewOptions
	fs.StringVar(&o.Dir, "dir", "", "the `DIR` `devicegate enroll --out` wrote (key.pem, chain.pem, root.pem) (required)")
	fs.StringVar(&o.URL, "url", "", "CA `URL` (default: the one the certificate names)")
	pwFile := fs.String("p12-password-file", "", "`F`: file with the password of the new device.p12 (default: prompt)")
	return func(ctx context.Context, _ []string, env *cliEnv) error { return runRenew(ctx, o, *pwFile, env) }
}

// runRenew renews this computer's device certificate in its last 30 days
// (or earlier once the owner allowed it): new key, same device, same slot.
func runRenew(ctx context.Context, o client.RenewOptions, pwFile string, env *cliEnv) error {
	if o.Dir == "" {
		return errors.New("--dir is required (devicegate renew --help)")
	}
	password, err := p12Password(pwFile, env)
	if err != nil {
		return err
	}
	o.P12Password, o.UserAgent = password, "devicegate-renew/"+version
	res, err := client.Renew(ctx, o)
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		return fmt.Errorf("%s\n%s", apiErr.Message, apiErr.MessageZH)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "renewed device %s of %s: serial %s, valid until %s; the previous certificate (serial %s) is revoked as superseded\n",
		res.DeviceID, res.SubAccount, res.Serial, res.NotAfter.Format("2006-01-02"), res.OldSerial)
	fmt.Fprintln(env.stdout, "import the new device.p12 into the browser (and remove the old one):")
	for _, f := range res.Files {
		fmt.Fprintf(env.stdout, "  %s\n", f)
	}
	return nil
}
