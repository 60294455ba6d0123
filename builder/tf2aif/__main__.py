from tf2aif.cli import main

raise SystemExit(main())
