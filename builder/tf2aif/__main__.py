from tf2aif.cli.main.main import main

raise SystemExit(main())
