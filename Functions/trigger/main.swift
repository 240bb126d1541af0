import DravenCore

CGI.serve(Trigger.self)
