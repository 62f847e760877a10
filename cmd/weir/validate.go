package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/weir-mesh/weir/discovery/file"
	"github.com/weir-mesh/weir/policy"
)

func newValidateCommand() *cobra.Command {
	var catalog string
	cmd := &cobra.Command{
		Use:   "validate [POLICY_DIR]",
		Short: "Check policy files (and a catalog file) without serving",
		Long: "validate parses every policy file in POLICY_DIR and, with --catalog, the catalog file.\n" +
			"It prints the first problem of each file with its file, line and field (a file is read up to\n" +
			"its first problem), and exits non-zero if there is any.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && catalog == "" {
				return errors.New("nothing to validate: give a policy directory and/or --catalog FILE")
			}
			var errs []error
			if catalog != "" {
				errs = append(errs, validateCatalog(catalog))
			}
			if len(args) == 1 {
				errs = append(errs, validatePolicies(cmd, args[0]))
			}
			if err := errors.Join(errs...); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return errors.New("validation failed")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&catalog, "catalog", "", "catalog file to validate")
	return cmd
}

func validateCatalog(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	_, err = file.Parse(path, data)
	return err
}

func validatePolicies(cmd *cobra.Command, dir string) error {
	set, err := policy.LoadDir(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: %d policies valid\n", dir, set.Len())
	return nil
}
