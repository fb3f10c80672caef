from reactlib.suite.cli import main

raise SystemExit(main())
