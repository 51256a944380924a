from posetransfer.cli import main

raise SystemExit(main())
