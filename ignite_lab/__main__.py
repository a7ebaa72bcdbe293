from ignite_lab.cli import main

main()
