from embedbench.cli import main

main()
