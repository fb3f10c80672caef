from reactlib.cli import main

raise SystemExit(main())
