from brainprobe.cli import main

main()
