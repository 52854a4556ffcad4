module dlsched.example/routing

go 1.19
