"""The `onecart` command's exit codes (its docstring says what each means)."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_MISSING_PROGRAM = 3
