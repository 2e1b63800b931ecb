from genedge.cli import main

raise SystemExit(main())
