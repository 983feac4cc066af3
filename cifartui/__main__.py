from cifartui.cli import main

raise SystemExit(main())
