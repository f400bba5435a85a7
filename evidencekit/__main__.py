from evidencekit.cli.main import main

main()
