from ehiconnect.cli.main import main

main()
