import DravenCore

CGI.serve(Approve.self)
