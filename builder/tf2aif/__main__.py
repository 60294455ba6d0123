from tf2aif.cli.main import main

raise SystemExit(main())
