from sheets_addon.cli import main

main()
