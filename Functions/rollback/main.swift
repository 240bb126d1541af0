import DravenCore

CGI.serve(Rollback.self)
