from diffusify.cli import main

main()
