from vmc_cli.cli import main

main()
