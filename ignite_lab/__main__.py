from ignite_lab.cli.main import main

main()
