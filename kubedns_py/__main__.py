from kubedns_py.cli import main

raise SystemExit(main())
