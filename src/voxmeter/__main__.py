from voxmeter.entrypoints.cli.main import main

main()
