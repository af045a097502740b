from rwproxy.cli import main

raise SystemExit(main())
